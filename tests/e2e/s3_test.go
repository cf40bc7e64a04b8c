package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/tests/testutil"
)

// cairnS3 runs cairn against an S3 repository on m.
func cairnS3(t *testing.T, m *testutil.MinIO, url string, extraEnv []string, args ...string) result {
	t.Helper()
	env := append([]string{"CAIRN_REPOSITORY=" + url, "CAIRN_PASSWORD=" + password}, m.Env()...)
	return cairnEnv(t, append(env, extraEnv...), args...)
}

func resticS3(t *testing.T, m *testutil.MinIO, url string, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(testutil.ResticBin(t), append([]string{"--no-cache"}, args...)...)
	cmd.Env = append(cleanEnv(), "RESTIC_REPOSITORY="+url, "RESTIC_PASSWORD="+password)
	cmd.Env = append(cmd.Env, m.Env()...)
	return cmd.CombinedOutput()
}

func TestS3EndToEnd(t *testing.T) {
	m := testutil.StartMinIO(t)
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	o := testutil.DefaultGenOptions(31)
	o.LargeFiles = []int64{9 << 20}
	testutil.GenTree(t, src, o)

	// cairn writes (init creates the bucket), restic reads.
	url := m.URL("cairn-bucket/team/repo")
	must := func(r result, what string) {
		t.Helper()
		if r.code != 0 {
			t.Fatalf("%s: %v", what, r)
		}
	}
	must(cairnS3(t, m, url, nil, "init"), "init")
	must(cairnS3(t, m, url, nil, "backup", src), "backup")
	must(cairnS3(t, m, url, nil, "snapshots"), "snapshots")
	target := filepath.Join(tmp, "r1")
	must(cairnS3(t, m, url, nil, "restore", "latest", "--target", target), "restore")
	testutil.CompareTrees(t, src, filepath.Join(target, src), testutil.CompareOptions{})
	must(cairnS3(t, m, url, nil, "check", "--read-data"), "check")
	if out, err := resticS3(t, m, url, "check", "--read-data"); err != nil {
		t.Fatalf("restic check of cairn's S3 repository: %v\n%s", err, out)
	}
	rtarget := filepath.Join(tmp, "r2")
	if out, err := resticS3(t, m, url, "restore", "latest", "--target", rtarget); err != nil {
		t.Fatalf("restic restore: %v\n%s", err, out)
	}
	testutil.CompareTrees(t, src, filepath.Join(rtarget, src), testutil.CompareOptions{})

	// restic writes, cairn reads.
	rurl := m.URL("restic-bucket/x")
	if out, err := resticS3(t, m, rurl, "init", "--repository-version", "2"); err != nil {
		t.Fatalf("restic init: %v\n%s", err, out)
	}
	if out, err := resticS3(t, m, rurl, "backup", src); err != nil {
		t.Fatalf("restic backup: %v\n%s", err, out)
	}
	must(cairnS3(t, m, rurl, nil, "check", "--read-data"), "cairn check of restic's S3 repository")
	ctarget := filepath.Join(tmp, "r3")
	must(cairnS3(t, m, rurl, nil, "restore", "latest", "--target", ctarget), "cairn restore of restic's S3 repository")
	testutil.CompareTrees(t, src, filepath.Join(ctarget, src), testutil.CompareOptions{})

	// Faults: one clear line each, non-zero exit, nothing changed.
	r := cairnS3(t, m, url, []string{"AWS_SECRET_ACCESS_KEY=wrong"}, "snapshots")
	oneLine(t, r, "access denied")
	r = cairnS3(t, m, m.URL("no-such-bucket"), nil, "snapshots")
	oneLine(t, r, "does not exist")
	r = cairnS3(t, m, url, nil, "-o", "read-only=true", "backup", src)
	oneLine(t, r, "read-only")
	r = cairnS3(t, m, url, nil, "--read-only", "unlock", "--remove-all")
	oneLine(t, r, "read-only")
	// Read-only still reads.
	must(cairnS3(t, m, url, nil, "--read-only", "snapshots"), "read-only snapshots")
	must(cairnS3(t, m, url, nil, "--read-only", "--no-lock", "restore", "latest", "--target", filepath.Join(tmp, "r4")), "read-only restore")
}

// MinIO stopped in the middle of a backup: the backup fails with a clear
// error; after a restart, the next backup succeeds and check passes.
func TestS3ServerStopsDuringBackup(t *testing.T) {
	m := testutil.StartMinIO(t)
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	o := testutil.DefaultGenOptions(41)
	o.LargeFiles = []int64{90 << 20, 90 << 20}
	testutil.GenTree(t, src, o)
	url := m.URL("stop-bucket")
	if r := cairnS3(t, m, url, nil, "init"); r.code != 0 {
		t.Fatal(r)
	}
	cmd := exec.Command(cairnBin, "backup", "--pack-size", "4", src)
	cmd.Env = append(cleanEnv(), "CAIRN_REPOSITORY="+url, "CAIRN_PASSWORD="+password, "CAIRN_KDF_N=1024")
	cmd.Env = append(cmd.Env, m.Env()...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(700 * time.Millisecond)
	m.Stop()
	err := cmd.Wait()
	m.Start()
	if err == nil {
		t.Log("backup finished before the server stopped; still checking the repository")
	} else if msg := strings.TrimSpace(stderr.String()); strings.Count(msg, "\n") > 3 || msg == "" {
		t.Fatalf("failed backup should say why in a line: %q", msg)
	} else {
		t.Logf("backup while the server stopped:\n%s", msg)
	}
	if r := cairnS3(t, m, url, nil, "unlock"); r.code != 0 {
		t.Fatal(r)
	}
	if r := cairnS3(t, m, url, nil, "backup", src); r.code != 0 {
		t.Fatalf("backup after restart: %v", r)
	}
	if r := cairnS3(t, m, url, nil, "check", "--read-data"); r.code != 0 {
		t.Fatalf("check after restart: %v", r)
	}
	target := filepath.Join(tmp, "r")
	if r := cairnS3(t, m, url, nil, "restore", "latest", "--target", target); r.code != 0 {
		t.Fatal(r)
	}
	testutil.CompareTrees(t, src, filepath.Join(target, src), testutil.CompareOptions{})
}
