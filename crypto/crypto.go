// Package crypto implements restic's repository encryption (format v2):
// AES-256-CTR with a random 16-byte IV, authenticated by Poly1305-AES over
// the ciphertext, plus scrypt-protected key files.
package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"unsafe"

	//lint:ignore SA1019 restic's repository format is defined with Poly1305-AES.
	"golang.org/x/crypto/poly1305"
)

const (
	IVSize    = 16
	MACSize   = 16
	Extension = IVSize + MACSize // per-ciphertext overhead
)

var (
	ErrUnauthenticated = errors.New("ciphertext verification failed")
	ErrWrongPassword   = errors.New("wrong password or no key found")
)

// MACKey is a Poly1305-AES key: K is the AES-128 key used to derive the
// per-message s = AES_K(nonce), R is the poly1305 r value.
type MACKey struct {
	K [16]byte
	R [16]byte
}

// Key is a restic master key (or a password-derived key-file key).
type Key struct {
	MACKey        MACKey
	EncryptionKey [32]byte

	// ciphers caches expanded AES schedules. It is immutable once built and
	// only trusted while it matches the exported fields, so copying a Key or
	// editing its fields stays correct (and vet's copylocks stays quiet).
	ciphers *keyCiphers
}

type keyCiphers struct {
	mac, enc cipher.Block
	src      [64]byte // key material the blocks were built from
}

func (k *Key) material() (m [64]byte) {
	copy(m[:32], k.EncryptionKey[:])
	copy(m[32:48], k.MACKey.K[:])
	copy(m[48:], k.MACKey.R[:])
	return m
}

func newKeyCiphers(k *Key) *keyCiphers {
	c := &keyCiphers{src: k.material()}
	var err error
	if c.enc, err = aes.NewCipher(k.EncryptionKey[:]); err != nil {
		panic(err) // unreachable: the key length is fixed
	}
	if c.mac, err = aes.NewCipher(k.MACKey.K[:]); err != nil {
		panic(err)
	}
	return c
}

// init (re)builds the cache; called by every constructor in this package.
func (k *Key) init() *Key {
	k.ciphers = newKeyCiphers(k)
	return k
}

// blocks returns the cached ciphers, or fresh ones (without storing them, so
// concurrent callers never race) for hand-built or modified keys.
func (k *Key) blocks() *keyCiphers {
	if c := k.ciphers; c != nil && c.src == k.material() {
		return c
	}
	return newKeyCiphers(k)
}

// maskR clears the bits poly1305 ignores so stored keys are canonical.
func maskR(r *[16]byte) {
	r[3] &= 0x0f
	r[7] &= 0x0f
	r[11] &= 0x0f
	r[15] &= 0x0f
	r[4] &= 0xfc
	r[8] &= 0xfc
	r[12] &= 0xfc
}

// NewRandomKey returns a fresh master key from crypto/rand.
func NewRandomKey() *Key {
	k := &Key{}
	rand.Read(k.EncryptionKey[:]) // never fails (Go >= 1.24 crashes instead)
	rand.Read(k.MACKey.K[:])
	rand.Read(k.MACKey.R[:])
	maskR(&k.MACKey.R)
	return k.init()
}

// Valid reports whether all key parts are set.
func (k *Key) Valid() bool {
	return k != nil && k.EncryptionKey != [32]byte{} &&
		k.MACKey.K != [16]byte{} && k.MACKey.R != [16]byte{}
}

// polyKey builds the one-time poly1305 key r || AES_K(iv).
func polyKey(c *keyCiphers, r *[16]byte, iv []byte) (pk [32]byte) {
	copy(pk[:16], r[:])
	c.mac.Encrypt(pk[16:], iv)
	return pk
}

// Seal appends IV || AES-256-CTR(plaintext) || MAC to dst and returns the
// result. dst may alias plaintext (e.g. plaintext[:0]) if it has the capacity.
func (k *Key) Seal(dst, plaintext []byte) []byte {
	c := k.blocks()
	n := len(plaintext)
	ret, out := sliceForAppend(dst, n+Extension)
	body := out[IVSize : IVSize+n]
	if overlap(out, plaintext) {
		copy(body, plaintext) // memmove; then encrypt in place
		plaintext = body
	}
	var iv [IVSize]byte
	rand.Read(iv[:])
	copy(out, iv[:])
	cipher.NewCTR(c.enc, iv[:]).XORKeyStream(body, plaintext)

	pk := polyKey(c, &k.MACKey.R, iv[:])
	var tag [MACSize]byte
	poly1305.Sum(&tag, body, &pk)
	copy(out[IVSize+n:], tag[:])
	return ret
}

// Open verifies ciphertext (IV || body || MAC) in constant time and only
// then appends the plaintext to dst. dst may alias ciphertext (e.g.
// ciphertext[:0]) to decrypt in place.
func (k *Key) Open(dst, ciphertext []byte) ([]byte, error) {
	if len(ciphertext) < Extension {
		return nil, fmt.Errorf("crypto: ciphertext too short (%d bytes)", len(ciphertext))
	}
	c := k.blocks()
	n := len(ciphertext) - Extension
	var iv [IVSize]byte
	var tag [MACSize]byte
	copy(iv[:], ciphertext)
	copy(tag[:], ciphertext[IVSize+n:])
	body := ciphertext[IVSize : IVSize+n]

	pk := polyKey(c, &k.MACKey.R, iv[:])
	if !poly1305.Verify(&tag, body, &pk) {
		return nil, ErrUnauthenticated
	}

	ret, out := sliceForAppend(dst, n)
	if overlap(out, ciphertext) {
		copy(out, body) // memmove; then decrypt in place
		body = out
	}
	cipher.NewCTR(c.enc, iv[:]).XORKeyStream(out, body)
	return ret, nil
}

// sliceForAppend extends in by n bytes, reusing its capacity when possible;
// tail is the newly added part.
func sliceForAppend(in []byte, n int) (head, tail []byte) {
	if total := len(in) + n; cap(in) >= total {
		head = in[:total]
	} else {
		head = make([]byte, total)
		copy(head, in)
	}
	return head, head[len(in):]
}

// overlap reports whether x and y share any memory. XORKeyStream panics on
// partial overlap, so such inputs are first moved into place with copy.
func overlap(x, y []byte) bool {
	if len(x) == 0 || len(y) == 0 {
		return false
	}
	x0, x1 := uintptr(unsafe.Pointer(&x[0])), uintptr(unsafe.Pointer(&x[len(x)-1]))
	y0, y1 := uintptr(unsafe.Pointer(&y[0])), uintptr(unsafe.Pointer(&y[len(y)-1]))
	return x0 <= y1 && y0 <= x1
}

// keyJSON is restic's master-key encoding; []byte gives std base64.
type keyJSON struct {
	MAC struct {
		K []byte `json:"k"`
		R []byte `json:"r"`
	} `json:"mac"`
	Encrypt []byte `json:"encrypt"`
}

// MarshalJSON encodes k as {"mac":{"k":..,"r":..},"encrypt":..}.
func (k *Key) MarshalJSON() ([]byte, error) {
	var j keyJSON
	j.MAC.K = k.MACKey.K[:]
	j.MAC.R = k.MACKey.R[:]
	j.Encrypt = k.EncryptionKey[:]
	return json.Marshal(&j)
}

// UnmarshalJSON decodes restic's master-key encoding, insisting on exact
// key lengths so a truncated key is never silently zero-padded.
func (k *Key) UnmarshalJSON(data []byte) error {
	var j keyJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	if len(j.MAC.K) != 16 || len(j.MAC.R) != 16 || len(j.Encrypt) != 32 {
		return fmt.Errorf("crypto: invalid key lengths (mac.k %d, mac.r %d, encrypt %d)",
			len(j.MAC.K), len(j.MAC.R), len(j.Encrypt))
	}
	copy(k.MACKey.K[:], j.MAC.K)
	copy(k.MACKey.R[:], j.MAC.R)
	copy(k.EncryptionKey[:], j.Encrypt)
	k.init()
	return nil
}
