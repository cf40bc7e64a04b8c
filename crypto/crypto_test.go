package crypto

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
)

var testSizes = []int{0, 1, 15, 16, 17, 1 << 20}

func randBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(n)})
	r.Read(b)
	return b
}

func TestSealOpenRoundTrip(t *testing.T) {
	k := NewRandomKey()
	for _, n := range testSizes {
		plain := randBytes(n)
		ct := k.Seal(nil, plain)
		if len(ct) != n+Extension {
			t.Fatalf("size %d: ciphertext length %d, want %d", n, len(ct), n+Extension)
		}
		if n >= 16 && bytes.Contains(ct, plain[:16]) {
			t.Fatalf("size %d: plaintext visible in ciphertext", n)
		}
		got, err := k.Open(nil, ct)
		if err != nil {
			t.Fatalf("size %d: Open: %v", n, err)
		}
		if !bytes.Equal(got, plain) {
			t.Fatalf("size %d: round trip mismatch", n)
		}

		// Appending to a non-empty dst must keep its prefix.
		prefix := []byte("prefix")
		ct2 := k.Seal(append([]byte(nil), prefix...), plain)
		if !bytes.HasPrefix(ct2, prefix) {
			t.Fatalf("size %d: Seal clobbered dst prefix", n)
		}
		got, err = k.Open(append([]byte(nil), prefix...), ct2[len(prefix):])
		if err != nil || !bytes.Equal(got, append(append([]byte(nil), prefix...), plain...)) {
			t.Fatalf("size %d: Open with dst prefix failed: %v", n, err)
		}
		if bytes.Equal(ct, ct2[len(prefix):]) {
			t.Fatalf("size %d: two Seals of the same plaintext are identical", n)
		}
	}
}

func TestTamper(t *testing.T) {
	k := NewRandomKey()
	for _, n := range []int{0, 1, 17, 100} {
		ct := k.Seal(nil, randBytes(n))
		for i := range ct { // every byte: IV, body and MAC
			bad := bytes.Clone(ct)
			bad[i] ^= 0x01
			if _, err := k.Open(nil, bad); !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("size %d: flipping byte %d: err = %v, want ErrUnauthenticated", n, i, err)
			}
		}
	}
	if _, err := k.Open(nil, make([]byte, Extension-1)); err == nil {
		t.Fatal("Open accepted a ciphertext shorter than Extension")
	}
	if _, err := NewRandomKey().Open(nil, k.Seal(nil, []byte("x"))); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("Open with another key: %v", err)
	}
}

func TestInPlace(t *testing.T) {
	k := NewRandomKey()
	plain := randBytes(1000)
	buf := make([]byte, len(plain), len(plain)+Extension)
	copy(buf, plain)
	ct := k.Seal(buf[:0], buf)
	if &ct[0] != &buf[0] {
		t.Fatal("Seal did not reuse dst capacity")
	}
	want := bytes.Clone(ct)
	pt, err := k.Open(ct[:0], ct)
	if err != nil || !bytes.Equal(pt, plain) {
		t.Fatalf("in-place Open: %v", err)
	}
	if got, err := k.Open(nil, want); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("in-place Seal output does not open: %v", err)
	}
}

// Keys built by hand or edited after use must not use a stale cipher cache.
func TestHandBuiltAndModifiedKey(t *testing.T) {
	k := NewRandomKey()
	hand := &Key{MACKey: k.MACKey, EncryptionKey: k.EncryptionKey}
	if got, err := hand.Open(nil, k.Seal(nil, []byte("hi"))); err != nil || string(got) != "hi" {
		t.Fatalf("hand-built key: %q, %v", got, err)
	}
	ct := k.Seal(nil, []byte("hi"))
	k.EncryptionKey[0] ^= 1
	k.MACKey.K[0] ^= 1
	if _, err := k.Open(nil, ct); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("modified key still opens old ciphertext: %v", err)
	}
}

func TestConcurrent(t *testing.T) {
	k := NewRandomKey()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			plain := randBytes(4096 + g)
			for range 50 {
				got, err := k.Open(nil, k.Seal(nil, plain))
				if err != nil || !bytes.Equal(got, plain) {
					t.Errorf("goroutine %d: %v", g, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestKeyJSON(t *testing.T) {
	k := NewRandomKey()
	if !k.Valid() || (&Key{}).Valid() {
		t.Fatal("Valid is wrong")
	}
	r := k.MACKey.R
	maskR(&r)
	if r != k.MACKey.R {
		t.Fatal("random R is not masked")
	}
	data, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	var generic map[string]any
	if err := json.Unmarshal(data, &generic); err != nil {
		t.Fatal(err)
	}
	mac, _ := generic["mac"].(map[string]any)
	if _, ok := generic["encrypt"].(string); !ok || mac["k"] == nil || mac["r"] == nil || len(generic) != 2 {
		t.Fatalf("unexpected JSON shape: %s", data)
	}
	var k2 Key
	if err := json.Unmarshal(data, &k2); err != nil {
		t.Fatal(err)
	}
	if k2.MACKey != k.MACKey || k2.EncryptionKey != k.EncryptionKey {
		t.Fatal("JSON round trip changed the key")
	}
	if got, err := k2.Open(nil, k.Seal(nil, []byte("x"))); err != nil || string(got) != "x" {
		t.Fatalf("decoded key cannot open: %v", err)
	}
	bad := []byte(`{"mac":{"k":"AAAA","r":"AAAA"},"encrypt":"AAAA"}`)
	if err := json.Unmarshal(bad, &k2); err == nil {
		t.Fatal("short key lengths accepted")
	}
}

func benchKey(b *testing.B) (*Key, []byte) {
	k := NewRandomKey()
	return k, randBytes(1 << 20)
}

func BenchmarkSeal1MiB(b *testing.B) {
	k, plain := benchKey(b)
	buf := make([]byte, 0, len(plain)+Extension)
	b.SetBytes(int64(len(plain)))
	b.ReportAllocs()
	for b.Loop() {
		buf = k.Seal(buf[:0], plain)
	}
}

func BenchmarkOpen1MiB(b *testing.B) {
	k, plain := benchKey(b)
	ct := k.Seal(nil, plain)
	buf := make([]byte, 0, len(plain))
	b.SetBytes(int64(len(plain)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = k.Open(buf[:0], ct); err != nil {
			b.Fatal(err)
		}
	}
}
