package crypto

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

const fixturePassword = "cairn-test-password" // see testdata/README.md

func readKeyFile(t *testing.T, path string) *KeyFile {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var kf KeyFile
	if err := json.Unmarshal(data, &kf); err != nil {
		t.Fatalf("parsing key file: %v", err)
	}
	return &kf
}

// checkMaster compares k with the JSON printed by `restic cat masterkey`.
func checkMaster(t *testing.T, k *Key, resticJSON []byte) {
	t.Helper()
	var want Key
	if err := json.Unmarshal(resticJSON, &want); err != nil {
		t.Fatalf("parsing restic masterkey: %v", err)
	}
	if k.MACKey != want.MACKey || k.EncryptionKey != want.EncryptionKey {
		t.Fatal("master key differs from restic's")
	}
	ours, err := k.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, resticJSON); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ours, compact.Bytes()) {
		t.Fatalf("MarshalJSON = %s, restic = %s", ours, compact.Bytes())
	}
}

// checkConfig decrypts a restic config file and checks its content.
func checkConfig(t *testing.T, k *Key, ciphertext []byte) []byte {
	t.Helper()
	plain, err := k.Open(nil, ciphertext)
	if err != nil {
		t.Fatalf("opening config: %v", err)
	}
	var cfg struct {
		Version    int    `json:"version"`
		Poly       string `json:"chunker_polynomial"`
		Repository string `json:"id"`
	}
	if err := json.Unmarshal(plain, &cfg); err != nil {
		t.Fatalf("config is not JSON: %v (%q)", err, plain)
	}
	if cfg.Version != 2 || cfg.Poly == "" || cfg.Repository == "" {
		t.Fatalf("unexpected config %s", plain)
	}
	return plain
}

func TestResticFixtures(t *testing.T) {
	kf := readKeyFile(t, "testdata/restic-key")
	if kf.KDF != "scrypt" || kf.N == 0 || len(kf.Salt) != 64 || kf.Created.IsZero() {
		t.Fatalf("key file fields not parsed: %+v", kf)
	}
	master, err := kf.Open(fixturePassword)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	resticJSON, err := os.ReadFile("testdata/restic-masterkey.json")
	if err != nil {
		t.Fatal(err)
	}
	checkMaster(t, master, resticJSON)
	config, err := os.ReadFile("testdata/restic-config")
	if err != nil {
		t.Fatal(err)
	}
	checkConfig(t, master, config)

	if _, err := kf.Open("not-the-password"); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("wrong password: err = %v, want ErrWrongPassword", err)
	}
}

func TestKeyFileRoundTrip(t *testing.T) {
	master := NewRandomKey()
	kf, err := NewKeyFile("pw", master, DefaultKDFParams, "user", "host")
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(kf)
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"kdf":"scrypt"`, `"N":32768`, `"r":8`, `"p":1`, `"salt":"`, `"data":"`, `"created":"`} {
		if !bytes.Contains(data, []byte(field)) {
			t.Errorf("key file JSON lacks %s: %s", field, data)
		}
	}
	path := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := readKeyFile(t, path).Open("pw")
	if err != nil {
		t.Fatal(err)
	}
	if got.MACKey != master.MACKey || got.EncryptionKey != master.EncryptionKey {
		t.Fatal("key file returned a different master key")
	}
	if _, err := kf.Open("PW"); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := NewKeyFile("pw", &Key{}, DefaultKDFParams, "", ""); err == nil {
		t.Fatal("NewKeyFile accepted a zero master key")
	}
}

func TestKeyFileBadParams(t *testing.T) {
	kf, err := NewKeyFile("pw", NewRandomKey(), DefaultKDFParams, "", "")
	if err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*KeyFile){
		"unknown kdf":    func(k *KeyFile) { k.KDF = "argon2" },
		"N not pow2":     func(k *KeyFile) { k.N = 1000 },
		"N zero":         func(k *KeyFile) { k.N = 0 },
		"r zero":         func(k *KeyFile) { k.R = 0 },
		"p negative":     func(k *KeyFile) { k.P = -1 },
		"huge memory":    func(k *KeyFile) { k.N = 1 << 40 },
		"huge work":      func(k *KeyFile) { k.P = 1 << 20 },
		"empty salt":     func(k *KeyFile) { k.Salt = nil },
		"truncated data": func(k *KeyFile) { k.Data = k.Data[:10] },
	} {
		bad := *kf
		mod(&bad)
		_, err := bad.Open("pw")
		if err == nil || errors.Is(err, ErrWrongPassword) {
			t.Errorf("%s: err = %v, want a specific error", name, err)
		}
	}
}

func TestKDF(t *testing.T) {
	p := KDFParams{N: 1 << 15, R: 8, P: 1}
	salt := NewSalt()
	if len(salt) != 64 || bytes.Equal(salt, NewSalt()) {
		t.Fatal("NewSalt is not 64 fresh random bytes")
	}
	a, err := KDF(p, salt, "pw")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := KDF(p, salt, "pw")
	c, _ := KDF(p, salt, "pw2")
	if a.EncryptionKey != b.EncryptionKey || a.MACKey != b.MACKey || a.EncryptionKey == c.EncryptionKey {
		t.Fatal("KDF is not a deterministic function of the password")
	}
	r := a.MACKey.R
	maskR(&r)
	if r != a.MACKey.R || !a.Valid() {
		t.Fatal("derived R is not masked")
	}
}

func TestCalibrate(t *testing.T) {
	if p := Calibrate(time.Nanosecond, 1024); p != DefaultKDFParams {
		t.Fatalf("tiny target: %+v, want the minimum %+v", p, DefaultKDFParams)
	}
	p := Calibrate(time.Hour, 64)
	if p.N != 1<<16 || p.R != 8 || p.P != 16 {
		t.Fatalf("64 MiB cap with unlimited time: %+v, want N=2^16 and the time spent on p=16", p)
	}
	if p := Calibrate(time.Hour, 1); p.N != DefaultKDFParams.N || p.P != 16 {
		t.Fatalf("memory cap below the minimum: %+v, want the minimum N", p)
	}
	p = Calibrate(200*time.Millisecond, 0)
	if p.N < 1<<15 || p.N&(p.N-1) != 0 {
		t.Fatalf("N=%d is not a power of two >= 2^15", p.N)
	}
	if testing.Short() {
		return
	}
	// The estimate should be within a generous factor of reality.
	start := time.Now()
	if _, err := KDF(p, NewSalt(), "pw"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); (p.N > 1<<15 || p.P > 1) && d > time.Second {
		t.Errorf("calibrated for 200ms, took %v (N=%d)", d, p.N)
	}
	t.Logf("Calibrate(200ms) = %+v", p)
}
