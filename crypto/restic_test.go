package crypto

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// resticBinary finds restic; on CI (CI set) a missing binary is a failure,
// so the interop test cannot silently stop running.
func resticBinary(t *testing.T) string {
	path, err := exec.LookPath("restic")
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skip("restic not on PATH")
		}
		t.Fatalf("CI is set but restic is not on PATH: %v", err)
	}
	return path
}

func runRestic(t *testing.T, bin, repo, password string, args ...string) []byte {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), bin, append([]string{"--no-cache", "-q", "-r", repo}, args...)...)
	cmd.Env = append(os.Environ(), "RESTIC_PASSWORD="+password, "HOME="+t.TempDir())
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("restic %v: %v\n%s", args, err, ee.Stderr)
		}
		t.Fatalf("restic %v: %v", args, err)
	}
	return out
}

// TestResticLive checks both directions against the real restic binary:
// we open what restic wrote, and restic opens what we wrote.
func TestResticLive(t *testing.T) {
	bin := resticBinary(t)
	repo := filepath.Join(t.TempDir(), "repo")
	const pw1, pw2 = "live-password", "cairn-written-key"
	runRestic(t, bin, repo, pw1, "init", "--repository-version", "2")

	keys, err := filepath.Glob(filepath.Join(repo, "keys", "*"))
	if err != nil || len(keys) != 1 {
		t.Fatalf("expected one key file, got %v (%v)", keys, err)
	}
	master, err := readKeyFile(t, keys[0]).Open(pw1)
	if err != nil {
		t.Fatalf("opening restic's key file: %v", err)
	}
	checkMaster(t, master, runRestic(t, bin, repo, pw1, "cat", "masterkey"))
	configPath := filepath.Join(repo, "config")
	config, err := os.ReadFile(configPath)
	if err != nil {
		t.Fatal(err)
	}
	plain := checkConfig(t, master, config)

	// Add a key file of ours and re-seal the config with our code.
	kf, err := NewKeyFile(pw2, master, DefaultKDFParams, "cairn", "test")
	if err != nil {
		t.Fatal(err)
	}
	kfJSON, err := json.Marshal(kf)
	if err != nil {
		t.Fatal(err)
	}
	id := sha256.Sum256(kfJSON)
	if err := os.WriteFile(filepath.Join(repo, "keys", hex.EncodeToString(id[:])), kfJSON, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(configPath); err != nil { // restic writes it read-only
		t.Fatal(err)
	}
	if err := os.WriteFile(configPath, master.Seal(nil, plain), 0o600); err != nil {
		t.Fatal(err)
	}

	var want, got map[string]any
	if err := json.Unmarshal(plain, &want); err != nil {
		t.Fatal(err)
	}
	out := runRestic(t, bin, repo, pw2, "cat", "config")
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("restic cat config: %v (%q)", err, out)
	}
	for _, f := range []string{"version", "id", "chunker_polynomial"} {
		if got[f] != want[f] {
			t.Errorf("restic read config %s = %v, want %v", f, got[f], want[f])
		}
	}
}
