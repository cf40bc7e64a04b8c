package repo

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/restic/chunker"
)

// A config whose chunker polynomial makes no sense is refused on open with
// an error that names the problem.
func TestOpenRejectsBadPolynomial(t *testing.T) {
	ctx := context.Background()
	be, err := CreateLocal(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Init(ctx, be, "pw", 2, Options{KDF: testKDF})
	if err != nil {
		t.Fatal(err)
	}
	good := r.Config().ChunkerPolynomial
	for _, tc := range []struct {
		pol  chunker.Pol
		want string
	}{
		{0, "zero"},
		{1 << 53, "not irreducible"},   // x^53: divisible by x
		{good * 2, "degree 54"},        // too large for the chunker
		{0x83, "degree 7"},             // x^7+x+1 is irreducible but tiny
		{1<<63 | 1, "degree 63"},       // far out
		{good ^ 1<<52 ^ 1<<51 ^ 1, ""}, // maybe irreducible, maybe not: only must not panic
	} {
		cfg := r.Config()
		cfg.ChunkerPolynomial = tc.pol
		plain, _ := json.Marshal(cfg)
		if err := r.saveRaw(ctx, Handle{Type: ConfigFile}, r.key.Seal(nil, plain)); err != nil {
			t.Fatal(err)
		}
		_, err := Open(ctx, be, "pw", Options{})
		if tc.want == "" {
			if err != nil && !errors.Is(err, ErrBadConfig) {
				t.Errorf("polynomial %v: %v", tc.pol, err)
			}
			continue
		}
		if !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("polynomial %v: err = %v, want ErrBadConfig saying %q", tc.pol, err, tc.want)
		}
	}
	cfg := r.Config()
	plain, _ := json.Marshal(cfg)
	if err := r.saveRaw(ctx, Handle{Type: ConfigFile}, r.key.Seal(nil, plain)); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, be, "pw", Options{}); err != nil {
		t.Fatalf("the good polynomial back: %v", err)
	}
}
