package repo

import (
	"encoding/json"
	"testing"
)

// decodeConfigForFuzz is what Open does with the decrypted config file.
func decodeConfigForFuzz(plain []byte) (Config, error) {
	var c Config
	plain, err := decodeUnpacked(plain)
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(plain, &c); err != nil {
		return c, err
	}
	return c, c.validate()
}

// FuzzConfig: no panic (the polynomial check runs on any 64-bit value), and
// an accepted config re-encodes to one that is accepted and equal.
func FuzzConfig(f *testing.F) {
	c, err := NewConfig(2)
	if err != nil {
		f.Fatal(err)
	}
	buf, _ := json.Marshal(c)
	f.Add(buf)
	f.Add([]byte(`{"version":1,"id":"x","chunker_polynomial":"3DA3358B4DC173"}`))
	f.Add([]byte(`{"version":2,"id":"x","chunker_polynomial":"0"}`))
	f.Add([]byte(`{"version":2,"id":"x","chunker_polynomial":"ffffffffffffffff"}`))
	f.Add([]byte(`{"version":3}`))
	f.Add(encodeUnpacked(2, IndexFile, buf)) // compressed (restic never compresses the config)
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := decodeConfigForFuzz(in)
		if err != nil {
			return
		}
		re, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("accepted config does not encode: %v", err)
		}
		c2, err := decodeConfigForFuzz(re)
		if err != nil || c2 != c {
			t.Fatalf("round trip: %+v -> %+v, %v", c, c2, err)
		}
	})
}
