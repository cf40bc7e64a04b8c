package chunk

import (
	"fmt"
	"math/bits"
	"sync"
)

// The fingerprint of a position is the Rabin fingerprint of the windowSize
// bytes ending there: the bytes read as a polynomial over GF(2), first byte
// highest, modulo the repository's polynomial. It depends on those bytes
// only, so it can be computed from anywhere 64 bytes back: chunk starts,
// read boundaries and scan lanes never change it, and neither do cut points.
const windowSize = 64

// tables are the lookups for one polynomial; read-only once built.
type tables struct {
	// mod[t] reduces the top byte t that a shift by 8 pushes above the
	// degree: t·x^deg mod pol, plus t·x^deg itself to clear those bits.
	mod [256]uint64
	// out[b] removes byte b leaving the window while the next one enters:
	// b·x^(8·windowSize) mod pol.
	out   [256]uint64
	shift uint // deg-8: where the top byte of a fingerprint starts
}

// Polynomial degrees restic's chunker accepts: at least a byte, and room for
// a byte above the degree in 64 bits.
const (
	minDegree = 8
	maxDegree = 53
)

var tableCache struct {
	sync.Mutex
	m map[Pol]*tables
}

// tablesFor returns the tables of pol, built once per polynomial (a
// repository has one) and shared by all chunkers.
func tablesFor(pol Pol) (*tables, error) {
	p := uint64(pol)
	deg := bits.Len64(p) - 1
	if deg < minDegree || deg > maxDegree {
		return nil, fmt.Errorf("chunker polynomial %#x has degree %d, want %d to %d: the repository config is damaged", p, deg, minDegree, maxDegree)
	}
	tableCache.Lock()
	defer tableCache.Unlock()
	if t := tableCache.m[pol]; t != nil {
		return t, nil
	}
	if tableCache.m == nil || len(tableCache.m) >= 16 {
		// Only tests meet many polynomials; keep the cache small.
		tableCache.m = map[Pol]*tables{}
	}
	t := &tables{shift: uint(deg - 8)}
	for b := range uint64(256) {
		t.mod[b] = polMod(b<<deg, p) | b<<deg
		h := b
		for range windowSize {
			h = polMod(h<<8, p)
		}
		t.out[b] = h
	}
	tableCache.m[pol] = t
	return t, nil
}

// polMod returns x mod p over GF(2).
func polMod(x, p uint64) uint64 {
	dp := bits.Len64(p)
	for {
		dx := bits.Len64(x)
		if dx < dp {
			return x
		}
		x ^= p << (dx - dp)
	}
}

// warm returns the fingerprint of w, which holds windowSize bytes.
func (t *tables) warm(w []byte) uint64 {
	var d uint64
	shift := t.shift & 63
	for _, b := range w[:windowSize] {
		d = (d<<8 | uint64(b)) ^ t.mod[byte(d>>shift)]
	}
	return d
}

// scan1 rolls the fingerprint d of w[:windowSize] over the positions of w
// after it and returns the first position whose fingerprint has no bit of
// mask set (or -1) and the fingerprint there (or at the end).
func (t *tables) scan1(w []byte, d, mask uint64) (int, uint64) {
	shift := t.shift & 63
	for i := windowSize; i < len(w); i++ {
		d = (d<<8 | uint64(w[i])) ^ t.mod[byte(d>>shift)] ^ t.out[w[i-windowSize]]
		if d&mask == 0 {
			return i, d
		}
	}
	return -1, d
}

// scan2 is scan1 over two halves at once: the fingerprint is a chain of
// dependent table loads, so two independent chains run nearly twice as
// fast on one core. Lane B warms up on the 64 bytes before its half.
func (t *tables) scan2(w []byte, d, mask uint64) (int, uint64) {
	n := len(w) - windowSize
	half := n / 2
	a := w[:windowSize+half]
	b := w[half:]
	dA, dB := d, t.warm(b)
	b = b[:len(a)] // same length as a, so one bound covers both
	shift := t.shift & 63
	i := windowSize
	for ; i < len(a); i++ {
		dA = (dA<<8 | uint64(a[i])) ^ t.mod[byte(dA>>shift)] ^ t.out[a[i-windowSize]]
		dB = (dB<<8 | uint64(b[i])) ^ t.mod[byte(dB>>shift)] ^ t.out[b[i-windowSize]]
		if dA&mask == 0 || dB&mask == 0 {
			break
		}
	}
	if i < len(a) {
		if dA&mask == 0 {
			return i, dA
		}
		// Lane B has a cut; lane A's rest comes first.
		if p, dA := t.scan1(a[i+1-windowSize:], dA, mask); p >= 0 {
			return i + 1 - windowSize + p, dA
		}
		return half + i, dB
	}
	// Lane B is one position longer when n is odd.
	p, dB := t.scan1(w[half+len(a)-windowSize:], dB, mask)
	if p >= 0 {
		p += half + len(a) - windowSize
	}
	return p, dB
}

// scanMinLanes is the length below which splitting in lanes does not pay
// for lane B's warm-up.
const scanMinLanes = 4096

// scan rolls the fingerprint d of w[:windowSize] over the rest of w; see
// scan1.
func (t *tables) scan(w []byte, d, mask uint64) (int, uint64) {
	if len(w)-windowSize < scanMinLanes {
		return t.scan1(w, d, mask)
	}
	return t.scan2(w, d, mask)
}
