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
		// The bytes' terms first: the chain from one fingerprint to
		// the next is then a shift, a load and one XOR.
		x := (d<<8 | uint64(w[i])) ^ t.out[w[i-windowSize]]
		d = x ^ t.mod[byte(d>>shift)]
		if d&mask == 0 {
			return i, d
		}
	}
	return -1, d
}

// scan4 is scan1 over four quarters at once: the fingerprint is a chain of
// dependent loads, so four independent chains run about three times as
// fast on one core. The lanes after the first warm up on the 64 bytes
// before their quarters.
func (t *tables) scan4(w []byte, d, mask uint64) (int, uint64) {
	q := (len(w) - windowSize) / 4
	a := w[:windowSize+q]
	b, c, e := w[q:], w[2*q:], w[3*q:]
	dA := d
	dB, dC, dE := t.warm3(b[:windowSize], c[:windowSize], e[:windowSize])
	// All four the same length, so one bound covers them.
	b, c, e = b[:len(a)], c[:len(a)], e[:len(a)]
	shift := t.shift & 63
	i := windowSize
	for ; i < len(a); i++ {
		xA := (dA<<8 | uint64(a[i])) ^ t.out[a[i-windowSize]]
		xB := (dB<<8 | uint64(b[i])) ^ t.out[b[i-windowSize]]
		xC := (dC<<8 | uint64(c[i])) ^ t.out[c[i-windowSize]]
		xE := (dE<<8 | uint64(e[i])) ^ t.out[e[i-windowSize]]
		dA = xA ^ t.mod[byte(dA>>shift)]
		dB = xB ^ t.mod[byte(dB>>shift)]
		dC = xC ^ t.mod[byte(dC>>shift)]
		dE = xE ^ t.mod[byte(dE>>shift)]
		if dA&mask == 0 || dB&mask == 0 || dC&mask == 0 || dE&mask == 0 {
			break
		}
	}
	if i < len(a) {
		// The first lane with a cut at i has it, unless an earlier lane
		// has one in the rest of its quarter.
		ds := [4]uint64{dA, dB, dC, dE}
		k := 0
		for ds[k]&mask != 0 {
			k++
		}
		for j := range k {
			off := j*q + i + 1 - windowSize
			if p, dj := t.scan1(w[off:j*q+len(a)], ds[j], mask); p >= 0 {
				return off + p, dj
			}
		}
		return k*q + i, ds[k]
	}
	// The last lane has the positions left over by the division.
	off := 3*q + len(a) - windowSize
	p, dE := t.scan1(w[off:], dE, mask)
	if p >= 0 {
		p += off
	}
	return p, dE
}

// warm3 is warm on three windows at once.
func (t *tables) warm3(a, b, c []byte) (dA, dB, dC uint64) {
	shift := t.shift & 63
	a, b, c = a[:windowSize], b[:windowSize], c[:windowSize]
	for i := range a {
		dA = (dA<<8 | uint64(a[i])) ^ t.mod[byte(dA>>shift)]
		dB = (dB<<8 | uint64(b[i])) ^ t.mod[byte(dB>>shift)]
		dC = (dC<<8 | uint64(c[i])) ^ t.mod[byte(dC>>shift)]
	}
	return dA, dB, dC
}

// Lanes: scan4 takes rounds of up to 4·laneLen positions, so that a cut
// leaves at most three lanes' rest to finish one lane at a time; below
// minLanesLen positions the warm-ups do not pay.
const (
	laneLen     = 8 << 10
	minLanesLen = 1024
)

// scan rolls the fingerprint d of w[:windowSize] over the rest of w; see
// scan1.
func (t *tables) scan(w []byte, d, mask uint64) (int, uint64) {
	base := 0
	for len(w)-base-windowSize >= minLanesLen {
		end := min(len(w), base+windowSize+4*laneLen)
		if len(w)-end < minLanesLen {
			end = len(w) // no short round at the end
		}
		p, d2 := t.scan4(w[base:end], d, mask)
		if p >= 0 {
			return base + p, d2
		}
		d = d2
		base = end - windowSize
	}
	p, d := t.scan1(w[base:], d, mask)
	if p >= 0 {
		p += base
	}
	return p, d
}
