package crypto

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math/bits"
	"time"

	"golang.org/x/crypto/scrypt"
)

// KDFParams are scrypt's cost parameters.
type KDFParams struct {
	N, R, P int
}

var DefaultKDFParams = KDFParams{N: 1 << 15, R: 8, P: 1}

const (
	// MaxKDFMemory bounds scrypt's memory (128*N*r bytes) for any key this
	// process derives. Key files are read from storage that anyone with
	// write access can change; 256 MiB is four times what restic's and
	// cairn's calibration ever pick (60 MiB), yet safe on a small node.
	MaxKDFMemory = 256 << 20
	// MaxKDFWork bounds N*r*p, scrypt's time: 2^24 is about 6 s on a
	// desktop core and 30 s on a slow shared one; calibrated keys cost
	// 2^18 to 2^23.
	MaxKDFWork = 1 << 24
)

// ErrKDFParams is returned (wrapped) for scrypt parameters that are
// invalid or beyond MaxKDFMemory or MaxKDFWork.
var ErrKDFParams = errors.New("scrypt parameters out of bounds")

// Work is N*r*p, the measure MaxKDFWork bounds (saturating).
func (p KDFParams) Work() uint64 {
	if p.N <= 0 || p.R <= 0 || p.P <= 0 {
		return 0
	}
	hi1, w := bits.Mul64(uint64(p.N), uint64(p.R))
	hi2, w := bits.Mul64(w, uint64(p.P))
	if hi1 != 0 || hi2 != 0 {
		return ^uint64(0)
	}
	return w
}

// Validate rejects parameters scrypt cannot use or that cost more than
// MaxKDFMemory or MaxKDFWork.
func (p KDFParams) Validate() error {
	switch {
	case p.N <= 1 || bits.OnesCount(uint(p.N)) != 1:
		return fmt.Errorf("%w: N=%d is not a power of two > 1", ErrKDFParams, p.N)
	case p.R <= 0 || p.P <= 0:
		return fmt.Errorf("%w: r=%d, p=%d must be positive", ErrKDFParams, p.R, p.P)
	case uint64(p.N) > MaxKDFMemory/128/uint64(p.R):
		return fmt.Errorf("%w: N=%d, r=%d needs more than %d MiB", ErrKDFParams, p.N, p.R, MaxKDFMemory>>20)
	case p.Work() > MaxKDFWork:
		return fmt.Errorf("%w: N=%d, r=%d, p=%d is too expensive (N*r*p above 2^%d)", ErrKDFParams, p.N, p.R, p.P, bits.Len(MaxKDFWork)-1)
	}
	return nil
}

// Calibrate picks the largest power-of-two N >= 2^15 (r=8, p=1) whose
// estimated run time is at most target and whose memory (128*N*r bytes)
// is at most maxMemMiB (<= 0 means no memory limit). scrypt time is linear
// in N, so one small timed run is enough to extrapolate.
func Calibrate(target time.Duration, maxMemMiB int) KDFParams {
	p := DefaultKDFParams
	const probeN = 1 << 13 // 8 MiB: big enough to leave the CPU caches
	start := time.Now()
	if _, err := scrypt.Key([]byte("calibrate"), make([]byte, 64), probeN, p.R, p.P, 64); err != nil {
		return p
	}
	perN := float64(time.Since(start)) / probeN
	memMiB := func(n int) int { return n * p.R / 8192 } // 128*n*r bytes
	for n := p.N * 2; n <= MaxKDFMemory/128/p.R; n *= 2 {
		if float64(n)*perN > float64(target) || (maxMemMiB > 0 && memMiB(n) > maxMemMiB) {
			break
		}
		p.N = n
	}
	// Memory capped N below the time budget: spend the rest on p, which
	// costs time but no memory (scrypt runs the p lanes one after another).
	if perKey := float64(p.N) * perN; perKey > 0 {
		if lanes := int(float64(target) / perKey); lanes > p.P {
			p.P = max(1, min(lanes, 16, MaxKDFWork/(p.N*p.R)))
		}
	}
	return p
}

// KDF derives a key from password with scrypt. The 64 output bytes are
// laid out as restic does: encryption key, MAC K, MAC R.
func KDF(p KDFParams, salt []byte, password string) (*Key, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("crypto: %w", err)
	}
	if len(salt) == 0 {
		return nil, errors.New("crypto: empty scrypt salt")
	}
	out, err := scrypt.Key([]byte(password), salt, p.N, p.R, p.P, 64)
	if err != nil {
		return nil, fmt.Errorf("crypto: scrypt: %w", err)
	}
	k := &Key{}
	copy(k.EncryptionKey[:], out[:32])
	copy(k.MACKey.K[:], out[32:48])
	copy(k.MACKey.R[:], out[48:64])
	maskR(&k.MACKey.R)
	clear(out)
	return k.init(), nil
}

// NewSalt returns 64 random bytes, the salt size restic uses.
func NewSalt() []byte {
	s := make([]byte, 64)
	rand.Read(s)
	return s
}

// KeyFile is the JSON stored (unencrypted) at keys/<id>. Data holds the
// master key JSON sealed with the key derived from the password.
type KeyFile struct {
	Created  time.Time `json:"created"`
	Username string    `json:"username"`
	Hostname string    `json:"hostname"`
	KDF      string    `json:"kdf"`
	N        int       `json:"N"`
	R        int       `json:"r"`
	P        int       `json:"p"`
	Salt     []byte    `json:"salt"`
	Data     []byte    `json:"data"`
}

// NewKeyFile wraps master under password with fresh salt and params p.
func NewKeyFile(password string, master *Key, p KDFParams, username, hostname string) (*KeyFile, error) {
	if !master.Valid() {
		return nil, errors.New("crypto: invalid master key")
	}
	kf := &KeyFile{
		Created:  time.Now(),
		Username: username,
		Hostname: hostname,
		KDF:      "scrypt",
		N:        p.N,
		R:        p.R,
		P:        p.P,
		Salt:     NewSalt(),
	}
	user, err := KDF(p, kf.Salt, password)
	if err != nil {
		return nil, err
	}
	plain, err := master.MarshalJSON()
	if err != nil {
		return nil, err
	}
	kf.Data = user.Seal(nil, plain)
	clear(plain)
	return kf, nil
}

// Params are the key file's scrypt parameters.
func (kf *KeyFile) Params() KDFParams { return KDFParams{N: kf.N, R: kf.R, P: kf.P} }

// Check tells, without running scrypt, whether Open could work: a known
// KDF within bounds, a salt and sealed data.
func (kf *KeyFile) Check() error {
	switch {
	case kf.KDF != "scrypt":
		return fmt.Errorf("crypto: unsupported key derivation function %q", kf.KDF)
	case len(kf.Salt) == 0:
		return errors.New("crypto: key file has no salt")
	case len(kf.Data) <= Extension:
		return errors.New("crypto: key file holds no sealed key")
	}
	if err := kf.Params().Validate(); err != nil {
		return fmt.Errorf("crypto: %w", err)
	}
	return nil
}

// Open derives the key-file key from password and unwraps the master key.
func (kf *KeyFile) Open(password string) (*Key, error) {
	if err := kf.Check(); err != nil {
		return nil, err
	}
	user, err := KDF(KDFParams{N: kf.N, R: kf.R, P: kf.P}, kf.Salt, password)
	if err != nil {
		return nil, err
	}
	plain, err := user.Open(nil, kf.Data)
	if errors.Is(err, ErrUnauthenticated) {
		return nil, ErrWrongPassword
	} else if err != nil {
		return nil, fmt.Errorf("crypto: key file data: %w", err)
	}
	defer clear(plain)
	master := &Key{}
	if err := master.UnmarshalJSON(plain); err != nil {
		return nil, fmt.Errorf("crypto: decoding master key: %w", err)
	}
	if !master.Valid() {
		return nil, errors.New("crypto: key file holds an invalid master key")
	}
	return master, nil
}
