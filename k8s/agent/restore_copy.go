package agent

import (
	"context"
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/cairn-backup/cairn/k8s/kubelet"
	"github.com/cairn-backup/cairn/k8s/layout"
	"github.com/cairn-backup/cairn/k8s/volapi"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/match"
	"github.com/cairn-backup/cairn/snapshot/restorer"
	"golang.org/x/sys/unix"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// ErrForgedSource is why an item whose source is not a volume of the
// snapshot it names is refused.
var ErrForgedSource = errors.New("the item's source is not a volume tree of its snapshot")

var gvrPVC = schema.GroupVersionResource{Version: "v1", Resource: "persistentvolumeclaims"}

// noteBox holds the message the heartbeat writes while the work waits.
type noteBox struct {
	mu sync.Mutex
	s  string
}

func (n *noteBox) set(s string) { n.mu.Lock(); n.s = s; n.mu.Unlock() }
func (n *noteBox) get() string  { n.mu.Lock(); defer n.mu.Unlock(); return n.s }

type restoreResult struct {
	files, bytes, errors int64
	path, message        string
	flush                time.Duration // writing the marker: mostly syncfs
}

// safeName is what the parts of a /volumes path may hold: names of
// namespaces, pods and volumes, and nothing a matcher pattern reads as a
// wildcard.
var safeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// checkSource makes sure the item restores a volume tree of a backup and
// nothing else. Whoever may create VolumeRestores chooses the pod and the
// source; the agent runs as root. So the tree must be exactly the one the
// named snapshot holds at the named /volumes/<ns>/<pod>/<volume> path: a
// made-up tree ID, a tree of another snapshot, or a path outside /volumes
// (manifests and secrets live in /resources) is refused before anything
// is written.
func (ag *Agent) checkSource(ctx context.Context, src volapi.RestoreSource) (*snapshot.Snapshot, error) {
	sid, err := repo.ParseID(src.SnapshotID)
	if err != nil {
		return nil, fmt.Errorf("%w: snapshot ID %q: %v", ErrForgedSource, src.SnapshotID, err)
	}
	tid, err := repo.ParseID(src.Tree)
	if err != nil {
		return nil, fmt.Errorf("%w: tree ID %q: %v", ErrForgedSource, src.Tree, err)
	}
	parts := strings.Split(strings.TrimPrefix(src.Path, "/"), "/")
	if !strings.HasPrefix(src.Path, layout.VolumesPath+"/") || len(parts) != 4 || "/"+parts[0] != layout.VolumesPath {
		return nil, fmt.Errorf("%w: path %q is not %s/<namespace>/<pod>/<volume>", ErrForgedSource, src.Path, layout.VolumesPath)
	}
	for _, p := range parts[1:] {
		if !safeName.MatchString(p) {
			return nil, fmt.Errorf("%w: path %q: %q is not a name", ErrForgedSource, src.Path, p)
		}
	}
	r := ag.cfg.Repo
	if _, err := r.LoadNewIndexes(ctx); err != nil {
		return nil, fmt.Errorf("load new index files: %w", err)
	}
	sn, err := snapshot.LoadSnapshot(ctx, r, sid)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w (deleted or pruned since the restore started?)", sid.Str(), err)
	}
	if sn.Tree == nil {
		return nil, fmt.Errorf("%w: snapshot %s has no tree", ErrForgedSource, sid.Str())
	}
	n, err := snapshot.FindNode(ctx, snapshot.NewTreeLoader(r, 8), *sn.Tree, src.Path)
	if err != nil {
		return nil, fmt.Errorf("%w: snapshot %s has no %s: %v", ErrForgedSource, sid.Str(), src.Path, err)
	}
	if n.Type != snapshot.NodeDir || n.Subtree == nil || *n.Subtree != tid {
		return nil, fmt.Errorf("%w: tree %s is not the one snapshot %s holds at %s; nothing was written",
			ErrForgedSource, tid.Str(), sid.Str(), src.Path)
	}
	return sn, nil
}

// restoreVolume checks the item, waits for the kubelet to make the
// volume's directory, restores the tree into it and writes the done
// marker last.
func (ag *Agent) restoreVolume(ctx context.Context, vr *volapi.VolumeRestore, prog *snapshot.Progress, note *noteBox) (*restoreResult, error) {
	r := ag.cfg.Repo
	spec := vr.Spec
	if spec.Repository.ID != r.Config().ID {
		return nil, fmt.Errorf("the item is for repository %.10s (%s), this agent reads %.10s: run an agent for that repository",
			spec.Repository.ID, spec.Repository.Location, r.Config().ID)
	}
	if spec.DoneMarker != volapi.DoneMarker(spec.RestoreName) {
		return nil, fmt.Errorf("done marker %q is not %q, the name restore %s's pods wait for", spec.DoneMarker, volapi.DoneMarker(spec.RestoreName), spec.RestoreName)
	}
	sn, err := ag.checkSource(ctx, spec.Source)
	if err != nil {
		return nil, err
	}
	vol, err := ag.waitForVolume(ctx, spec, note)
	if err != nil {
		return nil, err
	}
	note.set("")
	unlock, err := ag.lock(ctx, vr.Name)
	if err != nil {
		return nil, fmt.Errorf("lock repository: %w", err)
	}
	defer unlock()
	// The marker of this restore is never restored from the tree: the
	// pod must not start before the data is all there.
	excl, err := match.NewMatcher([]string{path.Join(spec.Source.Path, spec.DoneMarker)}, false)
	if err != nil {
		return nil, err
	}
	var firstErr string
	failed, err := restorer.Restore(ctx, r, sn, spec.Source.Path, restorer.RestoreOptions{
		Target: vol.Path, Exclude: excl, Progress: prog,
		OnError: func(p string, err error) {
			ag.cfg.Logf("%s: %s: %v", vr.Name, p, err)
			if firstErr == "" {
				firstErr = fmt.Sprintf("%s: %v", strings.TrimPrefix(p, spec.Source.Path), err)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	res := &restoreResult{files: int64(prog.Files.Load()), bytes: int64(prog.Bytes.Load()), errors: int64(failed), path: vol.Path}
	if failed > 0 {
		// No marker: the pod would start on incomplete data.
		return nil, fmt.Errorf("%d files or directories could not be restored (first: %s); no done marker written, so the pod keeps waiting: see the agent's log, then delete the pod's restore and restore again", failed, firstErr)
	}
	t0 := time.Now()
	if err := writeMarker(vol.Path, spec.DoneMarker, ag.cfg.ID); err != nil {
		return nil, fmt.Errorf("write done marker: %w", err)
	}
	res.flush = time.Since(t0)
	return res, nil
}

// MountWaitPoll is how often the agent looks for a volume directory the
// kubelet has not made yet.
var MountWaitPoll = time.Second

// waitForVolume finds the volume's directory, waiting (up to
// Config.MountWait) while the kubelet has not made it, or the claim is not
// bound yet; the note says what it waits for.
func (ag *Agent) waitForVolume(ctx context.Context, spec volapi.VolumeRestoreSpec, note *noteBox) (*kubelet.Volume, error) {
	deadline := time.Now().Add(ag.cfg.MountWait)
	for {
		vol, wait, err := ag.findVolume(ctx, spec)
		if err == nil {
			return vol, nil
		}
		if !wait {
			return nil, err
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("gave up after %s: %w", ag.cfg.MountWait, err)
		}
		if note.get() == "" {
			ag.cfg.Logf("%s/%s volume %s: waiting: %v", spec.Pod.Namespace, spec.Pod.Name, spec.Volume, err)
		}
		note.set("waiting for the volume: " + err.Error())
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(MountWaitPoll):
		}
	}
}

// findVolume is one look; wait says the error may go away by itself.
func (ag *Agent) findVolume(ctx context.Context, spec volapi.VolumeRestoreSpec) (vol *kubelet.Volume, wait bool, err error) {
	pod, err := ag.podOf(ctx, spec.Pod)
	if err != nil {
		return nil, false, err
	}
	if err := checkPod(pod, spec, ag.cfg.Node); err != nil {
		return nil, false, err
	}
	pv := ""
	if spec.PVC != "" {
		c, err := ag.cfg.Dyn.Resource(gvrPVC).Namespace(spec.Pod.Namespace).Get(ctx, spec.PVC, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, true, fmt.Errorf("claim %s/%s does not exist (yet)", spec.Pod.Namespace, spec.PVC)
		}
		if err != nil {
			return nil, true, fmt.Errorf("read claim %s/%s: %w", spec.Pod.Namespace, spec.PVC, err)
		}
		pv, _, _ = unstructured.NestedString(c.Object, "spec", "volumeName")
		if pv == "" {
			return nil, true, fmt.Errorf("claim %s/%s is not bound to a volume yet", spec.Pod.Namespace, spec.PVC)
		}
	}
	vol, err = kubelet.Find(ag.cfg.KubeletRoot, spec.Pod.UID, spec.Volume, pv)
	if errors.Is(err, kubelet.ErrPodNotFound) || errors.Is(err, kubelet.ErrVolumeNotFound) {
		return nil, true, err
	}
	return vol, false, err
}

// writeMarker writes the done marker into dir atomically: a temporary
// file, flushed with the volume's file system, renamed into place. All
// through a descriptor of dir opened without following a symlink.
func writeMarker(dir, name, agentID string) error {
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", dir, err)
	}
	defer unix.Close(dfd)
	tmp := fmt.Sprintf(".%s.tmp-%d", name, time.Now().UnixNano())
	fd, err := unix.Openat(dfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return fmt.Errorf("create %s/%s: %w", dir, tmp, err)
	}
	body := fmt.Sprintf("restored by cairn agent %s at %s\n", agentID, time.Now().UTC().Format(time.RFC3339))
	_, werr := unix.Write(fd, []byte(body))
	// The data restored before must be on disk before the marker says so.
	if werr == nil {
		werr = unix.Syncfs(fd)
	}
	if cerr := unix.Close(fd); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = unix.Renameat(dfd, tmp, dfd, name)
	}
	if werr != nil {
		_ = unix.Unlinkat(dfd, tmp, 0)
		return fmt.Errorf("%s/%s: %w", dir, name, werr)
	}
	return unix.Fsync(dfd)
}
