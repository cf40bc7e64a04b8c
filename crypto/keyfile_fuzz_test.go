package crypto

import (
	"encoding/json"
	"errors"
	"runtime"
	"testing"
)

// FuzzKeyFile: a key file's JSON, as read from keys/, never panics the
// decoder or Open; parameters out of bounds are refused before scrypt
// allocates anything; a key file that opens yields a valid master key.
func FuzzKeyFile(f *testing.F) {
	master := NewRandomKey()
	kf, err := NewKeyFile("pw", master, KDFParams{N: 16, R: 1, P: 1}, "u", "h")
	if err != nil {
		f.Fatal(err)
	}
	good, _ := json.Marshal(kf)
	f.Add(good, "pw")
	f.Add(good, "wrong")
	for _, p := range []KDFParams{{N: 1 << 40, R: 8, P: 1}, {N: 1 << 20, R: 1 << 40, P: 1}, {N: 16, R: 1, P: 1 << 40}, {N: -1 << 63, R: 1, P: 1}, {N: 3, R: 1, P: 1}, {N: 16, R: 0, P: 1}} {
		bad := *kf
		bad.N, bad.R, bad.P = p.N, p.R, p.P
		buf, _ := json.Marshal(&bad)
		f.Add(buf, "pw")
	}
	f.Add([]byte(`{"kdf":"argon2","N":16,"r":1,"p":1}`), "")
	f.Add([]byte(`{"kdf":"scrypt","N":16,"r":1,"p":1,"salt":"","data":"AAAA"}`), "")
	f.Fuzz(func(t *testing.T, in []byte, password string) {
		var kf KeyFile
		if json.Unmarshal(in, &kf) != nil {
			return
		}
		p := KDFParams{N: kf.N, R: kf.R, P: kf.P}
		if p.Validate() == nil && uint64(p.N)*uint64(p.R)*uint64(p.P) > 1<<10 {
			return // acceptable but slow: the fuzzer would spend its time in scrypt
		}
		key, err := kf.Open(password)
		if err != nil {
			if p.Validate() != nil && errors.Is(err, ErrWrongPassword) {
				t.Fatalf("parameters %+v out of bounds reached the password check", p)
			}
			return
		}
		if kf.KDF != "scrypt" || p.Validate() != nil || !key.Valid() {
			t.Fatalf("opened with kdf %q, params %+v, valid key %v", kf.KDF, p, key.Valid())
		}
	})
}

// Parameters out of bounds are refused before scrypt allocates its
// 128*N*r bytes: opening such a key file costs next to nothing.
func TestKeyFileAbsurdParamsCheap(t *testing.T) {
	kf, err := NewKeyFile("pw", NewRandomKey(), KDFParams{N: 16, R: 1, P: 1}, "u", "h")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []KDFParams{{N: 1 << 40, R: 8, P: 1}, {N: 1 << 26, R: 8, P: 1}, {N: 1 << 20, R: 1 << 30, P: 1}, {N: 1 << 20, R: 8, P: 1 << 20}} {
		kf.N, kf.R, kf.P = p.N, p.R, p.P
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := kf.Open("pw")
		runtime.ReadMemStats(&after)
		if err == nil || errors.Is(err, ErrWrongPassword) {
			t.Errorf("%+v: %v, want a refusal of the parameters", p, err)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
			t.Errorf("%+v: allocated %d bytes before refusing", p, alloc)
		}
	}
}
