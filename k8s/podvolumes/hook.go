// Package podvolumes is the CLI's half of pod volume backups: it
// implements backup.VolumeHook by choosing the volumes (k8s/volumes),
// creating one VolumeBackup item (k8s/volapi) per volume for the agent of
// its node, waiting for the items, and stitching the trees the agents
// saved into the backup's snapshot at /volumes/<ns>/<pod>/<volume>. No
// volume data passes through the CLI: only tree IDs do.
package podvolumes

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cairn-backup/cairn/k8s/backup"
	"github.com/cairn-backup/cairn/k8s/layout"
	"github.com/cairn-backup/cairn/k8s/volapi"
	"github.com/cairn-backup/cairn/k8s/volumes"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot/archiver"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
)

// Options configure the hook.
type Options struct {
	Dyn       dynamic.Interface
	Namespace string           // where the items are created (the agents' namespace)
	Repo      *repo.Repository // the backup's repository, with its index loaded
	Location  string           // the repository's location without credentials, for people
	Backup    string           // the backup's name
	Select    volumes.Options
	Uploader  volapi.UploaderOptions
	// Tags are added to every volume's own snapshot: the backup's
	// expires= tag, so that `forget --expired` removes them with it.
	Tags []string
	// Timeout bounds the wait for the agents; items not done by then are
	// failed volumes of the backup. 0 = 4h.
	Timeout time.Duration
	Poll    time.Duration // how often the items are listed; 0 = 1 s
}

// DefaultTimeout is how long a backup waits for its volumes by default
// (as long as Velero's file system backups).
const DefaultTimeout = 4 * time.Hour

// Hook returns the VolumeHook that copies the selected pod volumes.
func Hook(o Options) backup.VolumeHook {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	return func(ctx context.Context, a *archiver.Archiver, in backup.VolumeInput) (*repo.ID, []layout.VolumeInfo, error) {
		return run(ctx, o, a, in)
	}
}

// job is one volume of the backup: what the plan says and how it ended.
type job struct {
	item volumes.Item
	name string // the VolumeBackup's name
	vb   *volapi.VolumeBackup
	err  string // set when it cannot be stitched in
}

func run(ctx context.Context, o Options, a *archiver.Archiver, in backup.VolumeInput) (*repo.ID, []layout.VolumeInfo, error) {
	plan, err := volumes.Select(in.Pods, in.PVCs, o.Select)
	if err != nil {
		return nil, nil, err
	}
	var infos []layout.VolumeInfo
	for _, w := range plan.Warnings {
		in.Warnf("%s", w)
	}
	for _, s := range plan.Skipped {
		switch s.Reason {
		case volumes.ReasonPodNotRunning, volumes.ReasonClaimNotFound, volumes.ReasonClaimUnbound, volumes.ReasonBlockVolume:
			// Selected, but its files cannot be copied: said loudly.
			in.Warnf("volume %s of pod %s/%s not copied: %s (%s)", s.Volume, s.Namespace, s.Pod, s.Detail, s.Reason)
			infos = append(infos, layout.VolumeInfo{Namespace: s.Namespace, Pod: s.Pod, Volume: s.Volume,
				Result: layout.VolumeSkipped, Reason: string(s.Reason) + ": " + s.Detail})
		default:
			in.Logf("volume %s of pod %s/%s not copied: %s", s.Volume, s.Namespace, s.Pod, s.Detail)
		}
	}
	if len(plan.Items) == 0 {
		in.Logf("no pod volume data to copy")
		return nil, infos, nil
	}
	jobs := make([]*job, len(plan.Items))
	for i, it := range plan.Items {
		jobs[i] = &job{item: it}
	}
	ph := newPodHooks(in, jobs, o)
	// Hooks of pods the rules picked but whose volumes are not copied
	// here (an unbound claim, a claim copied from another pod) run now.
	ph.runIdle(ctx)
	if err := create(ctx, o, jobs, in, ph); err != nil {
		ph.postAll(ctx)
		return nil, append(infos, failAll(jobs, err.Error())...), nil
	}
	err = wait(ctx, o, jobs, in, ph.done)
	ph.postAll(ctx) // thaw what is still frozen, whatever happened
	if err != nil {
		return nil, nil, err
	}
	// The agents wrote index files this process has not read: without
	// them the trees (and the blobs below) look missing and would be
	// written again or refused.
	if _, err := o.Repo.LoadNewIndexes(ctx); err != nil {
		return nil, nil, fmt.Errorf("load the agents' index files: %w", err)
	}
	tree, err := stitch(ctx, o.Repo, a, jobs, in.Time)
	if err != nil {
		return nil, nil, err
	}
	for _, j := range jobs {
		if j.err == "" && j.vb.Status.Errors > 0 {
			in.Warnf("volume %s of pod %s/%s: %s", j.item.Volume, j.item.Namespace, j.item.Pod, j.vb.Status.Message)
		}
		infos = append(infos, j.info())
	}
	return tree, infos, nil
}

// create makes the items, replacing any left over from an earlier backup
// of the same name (it was deleted, or this is a rerun after a failure):
// their status belongs to that backup.
func create(ctx context.Context, o Options, jobs []*job, in backup.VolumeInput, ph *podHooks) error {
	ri := o.Dyn.Resource(volapi.VolumeBackupResource).Namespace(o.Namespace)
	sel := volapi.LabelBackup + "=" + o.Backup
	err := ri.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		if apierrors.IsNotFound(err) || meta.IsNoMatchError(err) {
			return fmt.Errorf("the VolumeBackup resource is not installed: run `cairn cluster install-crds` and deploy the node agent, or back up without volume data (--backup-volumes=false)")
		}
		return fmt.Errorf("delete old VolumeBackups of %s: %w", o.Backup, err)
	}
	ref := volapi.RepositoryRef{ID: o.Repo.Config().ID, Location: o.Location}
	n := 0
	for _, j := range jobs {
		if !ph.pre(ctx, j) {
			continue // its pre hook failed: j.err says so
		}
		n++
		spec := j.item.Spec(o.Backup, ref, o.Uploader)
		spec.Tags = o.Tags
		vb := volapi.NewVolumeBackup(o.Namespace, spec)
		j.name = vb.Name
		u, err := vb.ToUnstructured()
		if err != nil {
			return err
		}
		for {
			_, err = ri.Create(ctx, u, metav1.CreateOptions{})
			if !apierrors.IsAlreadyExists(err) {
				break
			}
			// Still being deleted by the collection delete above.
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
		if err != nil {
			if apierrors.IsNotFound(err) {
				return errors.New("the VolumeBackup resource is not installed: run `cairn cluster install-crds` and deploy the node agent")
			}
			return fmt.Errorf("create VolumeBackup %s/%s: %w", o.Namespace, vb.Name, err)
		}
	}
	in.Logf("created %d VolumeBackups in namespace %s for the node agents", n, o.Namespace)
	return nil
}

// failAll reports every job failed with msg.
func failAll(jobs []*job, msg string) []layout.VolumeInfo {
	var out []layout.VolumeInfo
	for _, j := range jobs {
		if j.err == "" {
			j.err = msg
		}
		out = append(out, j.info())
	}
	return out
}

// info is the job's entry in backup.json.
func (j *job) info() layout.VolumeInfo {
	it := j.item
	v := layout.VolumeInfo{
		Namespace: it.Namespace, Pod: it.Pod, Volume: it.Volume, PVC: it.PVC, PV: it.PV,
		StorageClass: it.StorageClass, Size: it.Size, Node: it.Node,
	}
	if j.vb != nil {
		st := j.vb.Status
		v.Snapshot, v.Files, v.Bytes, v.BytesAdded = st.SnapshotID, uint64(st.Files), uint64(st.Bytes), uint64(st.BytesAdded)
	}
	switch {
	case j.err != "":
		v.Result, v.Error = layout.VolumeFailed, j.err
	default:
		v.Result = layout.VolumeCompleted
	}
	return v
}
