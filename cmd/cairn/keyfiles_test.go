package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A key file demanding scrypt N=2^40 next to the valid key: commands still
// open the repository and name the bad file in one warning line.
func TestBadKeyFileIsSkipped(t *testing.T) {
	e := newInitEnv(t)
	keys := e.repoFiles("keys")
	buf, err := os.ReadFile(filepath.Join(e.repo, "keys", keys[0]))
	if err != nil {
		t.Fatal(err)
	}
	var kf map[string]any
	if err := json.Unmarshal(buf, &kf); err != nil {
		t.Fatal(err)
	}
	kf["N"] = 1 << 40
	forged, _ := json.Marshal(kf)
	sum := sha256.Sum256(forged)
	name := hex.EncodeToString(sum[:])
	if err := os.WriteFile(filepath.Join(e.repo, "keys", name), forged, 0o400); err != nil {
		t.Fatal(err)
	}
	res := e.ok("snapshots")
	var warns []string
	for _, l := range strings.Split(strings.TrimSpace(res.stderr), "\n") {
		if strings.Contains(l, "key file") {
			warns = append(warns, l)
		}
	}
	if len(warns) != 1 || !strings.Contains(warns[0], name) || !strings.HasPrefix(warns[0], "warning: skipping key file") {
		t.Errorf("want one warning naming %s, got:\n%s", name, res.stderr)
	}
}
