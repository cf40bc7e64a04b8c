// Package catalogtest writes snapshots shaped like cluster backups with
// pod volume data, without a cluster: real directories archived at
// /volumes/<ns>/<pod>/<volume> next to a backup.json that lists them, as
// `cairn cluster backup` with the node agents writes them. For tests of
// the readers (the mount, export-volume, restic).
package catalogtest

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/k8s/layout"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/archiver"
)

// Volume is one pod volume of the backup.
type Volume struct {
	Namespace, Pod, Volume string
	PVC                    string // the claim's name; "" for a volume without one
	// Dir is archived as the volume's tree; "" leaves the volume out of
	// /volumes (a volume whose copy failed: set Error).
	Dir   string
	Error string
}

// WriteBackup saves a snapshot tagged backup=<name> holding a backup.json,
// one manifest per claim and the volumes' trees. Files and Bytes in
// backup.json count the regular files of each Dir.
func WriteBackup(t testing.TB, r *repo.Repository, name string, when time.Time, vols []Volume) *snapshot.Snapshot {
	t.Helper()
	return WriteBackupTagged(t, r, name, when, vols)
}

// WriteBackupTagged is WriteBackup with more tags (schedule=, expires=).
func WriteBackupTagged(t testing.TB, r *repo.Repository, name string, when time.Time, vols []Volume, tags ...string) *snapshot.Snapshot {
	t.Helper()
	ctx := context.Background()
	a := archiver.NewArchiver(r, archiver.ArchiveOptions{Time: when, Tags: append([]string{layout.TagBackup + name}, tags...), Hostname: "test-cluster"})
	info := &layout.BackupInfo{Name: name, Cluster: "test-cluster", Start: when, End: when, Phase: layout.PhaseCompleted,
		Items: map[string]int{}, PreferredVersions: map[string]string{}}
	pods := map[string]map[string][]*snapshot.Node{} // ns -> pod -> volumes
	claims := map[string][]*snapshot.Node{}          // ns -> manifests
	for _, v := range vols {
		vi := layout.VolumeInfo{Namespace: v.Namespace, Pod: v.Pod, Volume: v.Volume, PVC: v.PVC, Error: v.Error}
		if v.Error != "" {
			info.Phase = layout.PhasePartiallyFailed
		}
		if v.Dir != "" {
			n, err := a.SaveDir(ctx, v.Dir, nil)
			if err != nil {
				t.Fatalf("archive %s: %v", v.Dir, err)
			}
			n.Name = v.Volume
			if pods[v.Namespace] == nil {
				pods[v.Namespace] = map[string][]*snapshot.Node{}
			}
			pods[v.Namespace][v.Pod] = append(pods[v.Namespace][v.Pod], n)
			vi.Files, vi.Bytes = countFiles(t, v.Dir)
		}
		if v.PVC != "" {
			yaml := "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: " + v.PVC + "\n  namespace: " + v.Namespace + "\n"
			claims[v.Namespace] = append(claims[v.Namespace], file(t, a, v.PVC+".yaml", []byte(yaml), when))
			info.Items["persistentvolumeclaims"]++
			info.TotalItems++
		}
		info.Volumes = append(info.Volumes, vi)
	}

	var nsRes, nsVols []*snapshot.Node
	for ns, ms := range claims {
		nsRes = append(nsRes, dir(t, a, ns, when, dir(t, a, "persistentvolumeclaims", when, ms...)))
	}
	for ns, byPod := range pods {
		var podNodes []*snapshot.Node
		for pod, vs := range byPod {
			podNodes = append(podNodes, dir(t, a, pod, when, vs...))
		}
		nsVols = append(nsVols, dir(t, a, ns, when, podNodes...))
	}
	js, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	root := []*snapshot.Node{
		file(t, a, layout.BackupInfoFile, append(js, '\n'), when),
		dir(t, a, layout.ResourcesDir, when, dir(t, a, layout.NamespacesDir, when, nsRes...)),
		dir(t, a, layout.LogsDir, when, file(t, a, layout.BackupLogFile, []byte("test backup\n"), when)),
		dir(t, a, layout.VolumesDir, when, nsVols...),
	}
	rootID, err := a.SaveTree(ctx, &snapshot.Tree{Nodes: root})
	if err != nil {
		t.Fatal(err)
	}
	sn, err := a.Finish(ctx, rootID, []string{layout.SnapshotPath("test-cluster")})
	if err != nil {
		t.Fatal(err)
	}
	return sn
}

func countFiles(t testing.TB, root string) (files, bytes uint64) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		files++
		bytes += uint64(fi.Size())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files, bytes
}

func file(t testing.TB, a *archiver.Archiver, name string, data []byte, when time.Time) *snapshot.Node {
	t.Helper()
	ids, size, err := a.SaveReader(context.Background(), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return &snapshot.Node{Name: name, Type: snapshot.NodeFile, Mode: 0o644, ModTime: when, AccessTime: when,
		ChangeTime: when, Size: size, Content: ids, Links: 1}
}

func dir(t testing.TB, a *archiver.Archiver, name string, when time.Time, children ...*snapshot.Node) *snapshot.Node {
	t.Helper()
	id, err := a.SaveTree(context.Background(), &snapshot.Tree{Nodes: children})
	if err != nil {
		t.Fatal(err)
	}
	return &snapshot.Node{Name: name, Type: snapshot.NodeDir, Mode: os.ModeDir | 0o755, ModTime: when,
		AccessTime: when, ChangeTime: when, Subtree: &id}
}
