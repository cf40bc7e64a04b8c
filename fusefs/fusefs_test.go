package fusefs

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/archiver"
	"github.com/cairn-backup/cairn/tests/testutil"
)

const testPassword = "fusefs-test"

func newRepo(t *testing.T) (*repo.Repository, string) {
	t.Helper()
	dir := t.TempDir()
	be, err := repo.CreateLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(context.Background(), be, testPassword, 2,
		repo.Options{KDF: crypto.KDFParams{N: 1 << 10, R: 8, P: 1}})
	if err != nil {
		t.Fatal(err)
	}
	return r, dir
}

// openRepo opens a second handle, as another process (cairn backup) would.
func openRepo(t *testing.T, dir string) *repo.Repository {
	t.Helper()
	be, err := repo.OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(context.Background(), be, testPassword, repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func doBackup(t *testing.T, r *repo.Repository, src string, when time.Time, tags ...string) *snapshot.Snapshot {
	t.Helper()
	sn, _, err := archiver.Backup(context.Background(), r, []string{src}, archiver.ArchiveOptions{Time: when, Tags: tags, Hostname: "testhost"})
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	return sn
}

// mountRepo mounts the repository (opened from dir) in a temporary
// directory; the test's cleanup always unmounts it.
func mountRepo(t *testing.T, dir string, opts Options) (*Mounted, *FS) {
	t.Helper()
	testutil.NeedFUSE(t)
	r := openRepo(t, dir)
	also := opts.Warn
	opts.Warn = func(err error) {
		t.Logf("fusefs warning: %v", err)
		if also != nil {
			also(err)
		}
	}
	f, err := New(context.Background(), r, opts)
	if err != nil {
		t.Fatal(err)
	}
	mnt := t.TempDir()
	m, err := Mount(mnt, f, MountOptions{DefaultPermissions: true})
	if err != nil {
		t.Fatalf("mount: %v", err)
	}
	t.Cleanup(func() { unmountForTest(t, m) })
	return m, f
}

// unmountForTest unmounts with the server, falling back to a lazy
// fusermount3 -u -z, and checks that the serve loop ended.
func unmountForTest(t *testing.T, m *Mounted) {
	if err := m.Server.Unmount(); err != nil {
		t.Logf("unmount %s: %v; trying fusermount3 -u -z", m.Dir, err)
		if out, err := exec.Command("fusermount3", "-u", "-z", m.Dir).CombinedOutput(); err != nil {
			t.Errorf("fusermount3 -u -z %s: %v: %s", m.Dir, err, out)
		}
	}
	select {
	case <-m.Done():
	case <-time.After(10 * time.Second):
		t.Errorf("file system at %s still served after unmount", m.Dir)
	}
}

func readDirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestMountContents(t *testing.T) {
	r, dir := newRepo(t)
	src := t.TempDir()
	testutil.GenTree(t, src, testutil.DefaultGenOptions(7))
	sn := doBackup(t, r, src, time.Time{}, "daily")
	m, _ := mountRepo(t, dir, Options{})

	if got, want := readDirNames(t, m.Dir), []string{"hosts", "ids", "namespaces", "snapshots", "tags"}; !slices.Equal(got, want) {
		t.Fatalf("top level = %v, want %v", got, want)
	}
	name := sn.Time.Local().Format(TimeFormat)
	if got := readDirNames(t, filepath.Join(m.Dir, "snapshots")); !slices.Equal(got, []string{name, "latest"}) {
		t.Fatalf("snapshots/ = %v, want [%s latest]", got, name)
	}
	if target, err := os.Readlink(filepath.Join(m.Dir, "snapshots", "latest")); err != nil || target != name {
		t.Fatalf("snapshots/latest -> %q, %v; want %q", target, err, name)
	}

	// The same tree under every top-level view.
	latest := filepath.Join(m.Dir, "snapshots", "latest", src)
	for _, p := range []string{
		latest,
		filepath.Join(m.Dir, "ids", sn.ID.Str(), src),
		filepath.Join(m.Dir, "tags", "daily", name, src),
		filepath.Join(m.Dir, "hosts", "testhost", name, src),
	} {
		if _, err := os.Stat(filepath.Join(p, "link-target.txt")); err != nil {
			t.Errorf("view %s: %v", p, err)
		}
	}

	// diff -r finds no difference (symlinks compared as links).
	out, err := exec.Command("diff", "-r", "--no-dereference", src, latest).CombinedOutput()
	if err != nil {
		t.Fatalf("diff -r %s %s: %v\n%s", src, latest, err, out)
	}
	// Metadata: sizes, modes, mtimes (to the nanosecond), owners, symlink
	// targets and contents.
	n := testutil.CompareTrees(t, src, latest, testutil.CompareOptions{CompareOwner: true})
	if n < 200 {
		t.Fatalf("compared only %d entries", n)
	}
	if target, err := os.Readlink(filepath.Join(latest, "link-rel")); err != nil || target != "link-target.txt" {
		t.Fatalf("link-rel -> %q, %v", target, err)
	}
	want, _ := os.ReadFile(filepath.Join(src, "link-target.txt"))
	if got, err := os.ReadFile(filepath.Join(latest, "link-rel")); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("reading through link-rel: %v (got %d bytes, want %d)", err, len(got), len(want))
	}

	// Link counts: a directory has 2 + its subdirectories.
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(latest, "deep-1"), &st); err != nil {
		t.Fatal(err)
	}
	subdirs := 0
	es, _ := os.ReadDir(filepath.Join(src, "deep-1"))
	for _, e := range es {
		if e.IsDir() {
			subdirs++
		}
	}
	if st.Nlink != uint64(2+subdirs) {
		t.Errorf("deep-1 has %d links, want %d", st.Nlink, 2+subdirs)
	}

	// Random reads inside the large file match the source.
	large := filepath.Join(latest, "large-00.bin")
	f, err := os.Open(large)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	orig, _ := os.ReadFile(filepath.Join(src, "large-00.bin"))
	for _, off := range []int64{0, 1, 1 << 20, int64(len(orig)) - 5000, int64(len(orig)) - 1} {
		buf := make([]byte, 4096)
		k, err := f.ReadAt(buf, off)
		if err != nil && k < min(4096, len(orig)-int(off)) {
			t.Fatalf("ReadAt(%d): %v", off, err)
		}
		if !bytes.Equal(buf[:k], orig[off:off+int64(k)]) {
			t.Fatalf("ReadAt(%d): content differs", off)
		}
	}

	// Read-only: writing fails.
	if err := os.WriteFile(filepath.Join(latest, "new-file"), []byte("x"), 0o644); err == nil {
		t.Fatal("created a file in the read-only mount")
	}
	if _, err := os.OpenFile(filepath.Join(latest, "link-target.txt"), os.O_WRONLY, 0); err == nil {
		t.Fatal("opened a file for writing")
	}
	if _, err := os.Stat(filepath.Join(m.Dir, "snapshots", "no-such-snapshot")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat of a missing snapshot: %v", err)
	}
}

func TestMountSeesNewSnapshots(t *testing.T) {
	r, dir := newRepo(t)
	src := t.TempDir()
	testutil.GenTree(t, src, testutil.GenOptions{Seed: 3, SmallFiles: 20, Depth: 2})
	t1 := time.Date(2024, 5, 1, 10, 0, 0, 0, time.Local)
	doBackup(t, r, src, t1)
	m, _ := mountRepo(t, dir, Options{RefreshInterval: 100 * time.Millisecond})

	snaps := filepath.Join(m.Dir, "snapshots")
	if got := readDirNames(t, snaps); len(got) != 2 {
		t.Fatalf("snapshots/ = %v, want one snapshot and latest", got)
	}
	// A second backup, by another repository handle, with new data.
	if err := os.WriteFile(filepath.Join(src, "added-later.txt"), []byte("new data for the second snapshot\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t2 := t1.Add(time.Hour)
	doBackup(t, openRepo(t, dir), src, t2)
	name2 := t2.Format(TimeFormat)

	deadline := time.Now().Add(10 * time.Second)
	for {
		got := readDirNames(t, snaps)
		if slices.Contains(got, name2) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("new snapshot %s did not appear: snapshots/ = %v", name2, got)
		}
		time.Sleep(150 * time.Millisecond)
	}
	data, err := os.ReadFile(filepath.Join(snaps, "latest", src, "added-later.txt"))
	if err != nil || string(data) != "new data for the second snapshot\n" {
		t.Fatalf("new file through latest: %q, %v", data, err)
	}
	if _, err := os.Stat(filepath.Join(snaps, t1.Format(TimeFormat), src, "added-later.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("new file in the old snapshot: %v", err)
	}
}

// saveFile stores content as a file node.
func saveFile(t *testing.T, a *archiver.Archiver, name, content string, mtime time.Time) *snapshot.Node {
	t.Helper()
	ids, size, err := a.SaveReader(context.Background(), strings.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	return &snapshot.Node{Name: name, Type: snapshot.NodeFile, Mode: 0o644, ModTime: mtime, AccessTime: mtime,
		ChangeTime: mtime, Size: size, Content: ids, Links: 1}
}

// saveDir stores a directory of children (nodes or nested maps).
func saveDir(t *testing.T, a *archiver.Archiver, name string, mtime time.Time, children ...*snapshot.Node) *snapshot.Node {
	t.Helper()
	id, err := a.SaveTree(context.Background(), &snapshot.Tree{Nodes: children})
	if err != nil {
		t.Fatal(err)
	}
	return &snapshot.Node{Name: name, Type: snapshot.NodeDir, Mode: os.ModeDir | 0o755, ModTime: mtime,
		AccessTime: mtime, ChangeTime: mtime, Subtree: &id}
}

// k8sBackup writes a snapshot laid out like a Kubernetes backup.
func k8sBackup(t *testing.T, r *repo.Repository, name string, when time.Time, fileText string) *snapshot.Snapshot {
	t.Helper()
	a := archiver.NewArchiver(r, archiver.ArchiveOptions{Time: when, Tags: []string{"backup=" + name}, Hostname: "cluster"})
	mt := when.Add(-time.Minute)
	resources := saveDir(t, a, "resources", mt,
		saveDir(t, a, "namespaces", mt,
			saveDir(t, a, "ns1", mt,
				saveDir(t, a, "configmaps", mt, saveFile(t, a, "x.yaml", "kind: ConfigMap\nname: x\n", mt)))))
	volumes := saveDir(t, a, "volumes", mt,
		saveDir(t, a, "ns1", mt,
			saveDir(t, a, "pod-a", mt,
				saveDir(t, a, "data", mt, saveFile(t, a, "file.txt", fileText, mt)))))
	root, err := a.SaveTree(context.Background(), &snapshot.Tree{Nodes: []*snapshot.Node{resources, volumes}})
	if err != nil {
		t.Fatal(err)
	}
	sn, err := a.Finish(context.Background(), root, []string{"/"})
	if err != nil {
		t.Fatal(err)
	}
	return sn
}

func TestMountKubernetesBackups(t *testing.T) {
	r, dir := newRepo(t)
	t1 := time.Date(2024, 6, 1, 2, 0, 0, 0, time.Local)
	k8sBackup(t, r, "nightly", t1, "volume data, first run\n")
	m, _ := mountRepo(t, dir, Options{RefreshInterval: 100 * time.Millisecond})

	base := filepath.Join(m.Dir, "namespaces", "ns1", "nightly")
	data, err := os.ReadFile(filepath.Join(base, "pods", "pod-a", "data", "file.txt"))
	if err != nil || string(data) != "volume data, first run\n" {
		t.Fatalf("pods/pod-a/data/file.txt = %q, %v", data, err)
	}
	data, err = os.ReadFile(filepath.Join(base, "resources", "configmaps", "x.yaml"))
	if err != nil || string(data) != "kind: ConfigMap\nname: x\n" {
		t.Fatalf("resources/configmaps/x.yaml = %q, %v", data, err)
	}
	if got := readDirNames(t, base); !slices.Equal(got, []string{"pods", "resources"}) {
		t.Fatalf("%s = %v", base, got)
	}

	// A second backup with the same name: the plain name moves to it, the
	// older one is still there, disambiguated by its time.
	t2 := t1.Add(24 * time.Hour)
	k8sBackup(t, openRepo(t, dir), "nightly", t2, "volume data, second run\n")
	older := "nightly@" + t1.Format(TimeFormat)
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Contains(readDirNames(t, filepath.Join(m.Dir, "namespaces", "ns1")), older) {
		if time.Now().After(deadline) {
			t.Fatalf("namespaces/ns1 = %v, want %s", readDirNames(t, filepath.Join(m.Dir, "namespaces", "ns1")), older)
		}
		time.Sleep(150 * time.Millisecond)
	}
	data, err = os.ReadFile(filepath.Join(base, "pods", "pod-a", "data", "file.txt"))
	if err != nil || string(data) != "volume data, second run\n" {
		t.Fatalf("nightly after the second backup: %q, %v", data, err)
	}
	data, err = os.ReadFile(filepath.Join(m.Dir, "namespaces", "ns1", older, "pods", "pod-a", "data", "file.txt"))
	if err != nil || string(data) != "volume data, first run\n" {
		t.Fatalf("%s: %q, %v", older, data, err)
	}
}

func TestCheckMountPoint(t *testing.T) {
	tmp := t.TempDir()
	if err := CheckMountPoint(filepath.Join(tmp, "missing")); !errors.Is(err, ErrNotMountable) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing dir: %v", err)
	}
	file := filepath.Join(tmp, "file")
	os.WriteFile(file, nil, 0o644)
	if err := CheckMountPoint(file); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("file: %v", err)
	}
	if err := CheckMountPoint(tmp); err != nil {
		t.Errorf("empty dir: %v", err)
	}
	_, dir := newRepo(t)
	m, _ := mountRepo(t, dir, Options{})
	if err := CheckMountPoint(m.Dir); err == nil || !strings.Contains(err.Error(), "busy") {
		t.Errorf("mounted dir: %v", err)
	}
	if got := unescapeMountPath(`/tmp/a\040b\134c`); got != `/tmp/a b\c` {
		t.Errorf("unescape = %q", got)
	}
}

func TestViewNames(t *testing.T) {
	at := time.Date(2024, 7, 1, 12, 0, 0, 0, time.Local)
	mk := func(id byte, tm time.Time, tags ...string) *snapshot.Snapshot {
		tree := repo.ID{id}
		return &snapshot.Snapshot{ID: repo.ID{id}, Time: tm, Tree: &tree, Tags: tags, Hostname: "h"}
	}
	// Three in the same second (sub-second order decides), one later.
	sns := []*snapshot.Snapshot{
		mk(4, at.Add(time.Hour), "backup=daily"),
		mk(2, at.Add(300*time.Millisecond), "backup=daily"),
		mk(1, at.Add(100*time.Millisecond), "x/y", ".."),
		mk(3, at.Add(500*time.Millisecond)),
	}
	v := buildView(sns)
	base := at.Format(TimeFormat)
	if want := []string{base, base + "-1", base + "-2", at.Add(time.Hour).Format(TimeFormat)}; !slices.Equal(v.names, want) {
		t.Fatalf("names %q, want %q", v.names, want)
	}
	if len(v.tags) != 1 || len(v.tags["backup=daily"]) != 2 {
		t.Fatalf("tags %v: unusable names must be left out", v.tags)
	}
	if len(v.backups) != 2 || v.backups[0].name != "daily" || v.backups[0].sn.ID[0] != 4 ||
		v.backups[1].name != "daily@"+at.Add(300*time.Millisecond).Format(TimeFormat) {
		t.Fatalf("backups %+v", v.backups)
	}
	if v.ids[repo.ID{3}.Str()] == nil || len(v.hosts["h"]) != 4 {
		t.Fatalf("ids %v hosts %v", v.ids, v.hosts)
	}
}
