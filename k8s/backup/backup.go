// Package backup saves the resources of a Kubernetes cluster into one cairn
// snapshot laid out as package layout describes: it selects resources,
// namespaces and labels, lists the objects, follows the cluster-scoped
// objects they need and writes /backup.json and the backup log. Pod
// volumes come in through a VolumeHook, where the volume agent plugs in.
package backup

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cairn-backup/cairn/k8s/hooks"
	"github.com/cairn-backup/cairn/k8s/kube"
	"github.com/cairn-backup/cairn/k8s/layout"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/retention"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/archiver"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
)

// BackupOptions say what to back up and how.
type BackupOptions struct {
	Name string // required; a DNS-1123 label, unique among the backups
	// Cluster is recorded as the snapshot's hostname and in backup.json;
	// "" = kube.Clients.Cluster.
	Cluster string
	Spec    layout.BackupSpec // filters (and Schedule), recorded in backup.json
	TTL     time.Duration     // the backup expires after this; 0 = never
	Time    time.Time         // zero = now

	CairnVersion string
	Workers      int   // resources listed at once; 0 = 4
	PageSize     int64 // objects per list request; 0 = 500
	// Progress, if set, counts objects (Files), their bytes (Bytes) and
	// resource lists done (Dirs); Current says "n/m resources".
	Progress *snapshot.Progress
	// Log, if set, gets every line of the backup log as it is written.
	Log func(line string)
	// Volumes, if set, saves pod volume data; it runs after the resources.
	Volumes VolumeHook
	// Hooks, if set, runs the pods' backup hooks (pre.hook.backup.… and
	// post.hook.backup.… annotations); nil runs none.
	Hooks hooks.Runner
	// CopiesVolumes says whether Volumes copies some volume of the pod:
	// then Volumes runs its hooks (VolumeInput.Hooks) around that copy;
	// other pods' hooks run around their manifests.
	CopiesVolumes func(pod *unstructured.Unstructured) bool
}

// VolumeHook saves the files of pod volumes into the backup and returns
// the tree that becomes /volumes (nil = none) and what it saved. It runs
// before the snapshot is written, with the archiver of the backup; the
// volume errors it reports in layout.VolumeInfo.Error make the backup
// PartiallyFailed, as does a returned error (the resources are still
// saved).
type VolumeHook func(ctx context.Context, a *archiver.Archiver, in VolumeInput) (tree *repo.ID, vols []layout.VolumeInfo, err error)

// VolumeInput is what the volume hook gets.
type VolumeInput struct {
	Pods []*unstructured.Unstructured // pods in the backup
	PVCs []*unstructured.Unstructured // claims in the backup
	Time time.Time                    // use as mtime of directories made up
	// Logf writes to the backup log; Warnf records a warning.
	Logf, Warnf func(format string, args ...any)
	// Hooks runs the backup hooks of the pods whose volumes the hook
	// copies (BackupOptions.CopiesVolumes); nil-safe.
	Hooks *PodHooks
}

// BackupResult is a saved backup.
type BackupResult struct {
	Info     *layout.BackupInfo
	Snapshot *snapshot.Snapshot
	Bytes    uint64 // size of the manifests
}

// ErrBackupExists is returned when the name is taken.
var ErrBackupExists = errors.New("a backup with this name already exists")

// Backup backs the cluster's resources up into one snapshot of r, whose
// index must be loaded. Problems with some resources (discovery of a
// group, a list) are recorded and make the backup PartiallyFailed; it is
// saved anyway. An error is returned only when no backup was saved.
func Backup(ctx context.Context, cl *kube.Clients, r *repo.Repository, opts BackupOptions) (*BackupResult, error) {
	if err := ValidateBackupName(opts.Name); err != nil {
		return nil, err
	}
	sel, err := newSelection(opts.Spec)
	if err != nil {
		return nil, err
	}
	if sn, err := backupSnapshot(ctx, r, opts.Name); err != nil {
		return nil, err
	} else if sn != nil {
		return nil, fmt.Errorf("%w: %q (snapshot %s); choose another name, or delete it first with `cairn cluster delete %s`",
			ErrBackupExists, opts.Name, sn.ID.Str(), opts.Name)
	}
	b := newBackupRun(cl, r, opts, sel)
	return b.run(ctx)
}

// backupSnapshot returns the newest snapshot of the backup called name, or
// nil.
func backupSnapshot(ctx context.Context, r *repo.Repository, name string) (*snapshot.Snapshot, error) {
	sns, err := snapshot.ListSnapshots(ctx, r, snapshot.Filter{Tags: []string{layout.TagBackup + name}}, nil)
	if err != nil || len(sns) == 0 {
		return nil, err
	}
	return sns[len(sns)-1], nil
}

type backupRun struct {
	cl   *kube.Clients
	r    *repo.Repository
	opts BackupOptions
	sel  *selection
	when time.Time
	log  *runLog
	a    *archiver.Archiver
	prog *snapshot.Progress
	disc *kube.Discovery
	info *layout.BackupInfo

	// namespaces: every existing one, and whether its objects are selected
	namespaces map[string]*unstructured.Unstructured
	nsSelected map[string]bool

	tasksTotal int
	store      *itemStore
	dyn        dynamic.Interface
	others     []kube.Resource // resources at other versions than disc's
	hooks      *PodHooks       // nil: no hooks run
}

func newBackupRun(cl *kube.Clients, r *repo.Repository, opts BackupOptions, sel *selection) *backupRun {
	if opts.Cluster == "" {
		opts.Cluster = cl.Cluster
	}
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.PageSize <= 0 {
		opts.PageSize = 500
	}
	when := opts.Time
	if when.IsZero() {
		when = time.Now()
	}
	when = when.UTC().Truncate(time.Millisecond)
	prog := opts.Progress
	if prog == nil {
		prog = &snapshot.Progress{}
	}
	b := &backupRun{
		cl: cl, r: r, opts: opts, sel: sel, when: when, prog: prog,
		log:   &runLog{echo: opts.Log},
		store: newItemStore(opts.Volumes != nil),
		dyn:   cl.Dynamic,
	}
	if opts.Hooks != nil {
		b.hooks = NewPodHooks(opts.Hooks, b.log.logf, b.log.warnf, b.log.errorf)
	}
	// The server's warnings (deprecated APIs) go to the backup log, once
	// each, instead of stderr.
	if cl.Config != nil {
		cfg := rest.CopyConfig(cl.Config)
		cfg.WarningHandler, cfg.WarningHandlerWithContext = &serverWarnings{log: b.log, seen: map[string]bool{}}, nil
		if dyn, err := dynamic.NewForConfig(cfg); err == nil {
			b.dyn = dyn
		}
	}
	return b
}

type serverWarnings struct {
	log  *runLog
	mu   sync.Mutex
	seen map[string]bool
}

func (w *serverWarnings) HandleWarningHeader(code int, agent, text string) {
	w.mu.Lock()
	first := !w.seen[text]
	w.seen[text] = true
	w.mu.Unlock()
	if first {
		w.log.logf("the API server warns: %s", text)
	}
}

func (b *backupRun) run(ctx context.Context) (*BackupResult, error) {
	o := b.opts
	b.info = &layout.BackupInfo{
		Name: o.Name, Cluster: o.Cluster, CairnVersion: o.CairnVersion,
		Spec: o.Spec, Start: b.when, Items: map[string]int{},
	}
	if o.TTL > 0 {
		exp := b.when.Add(o.TTL).Truncate(time.Second)
		b.info.Expires = &exp
		b.info.Spec.TTL = o.TTL.String()
	}
	b.prog.SetCurrent("discovering resources")
	b.log.logf("backup %q of cluster %q started", o.Name, o.Cluster)
	b.log.logf("spec: %s", describeSpec(o.Spec, b.sel))
	if v, err := b.cl.Discovery.ServerVersion(); err != nil {
		b.log.warnf("cannot read the server version: %v", err)
	} else {
		b.info.KubernetesVersion = v.GitVersion
		b.log.logf("server version %s", v.GitVersion)
	}
	if err := b.discover(ctx); err != nil {
		return nil, err
	}
	if err := b.listNamespaces(ctx); err != nil {
		return nil, err
	}
	nsTasks, clusterTasks, pvTasks := b.plan()
	b.tasksTotal = len(nsTasks) + len(clusterTasks) + len(pvTasks)
	b.a = archiver.NewArchiver(b.r, archiver.ArchiveOptions{
		Tags: b.tags(), Hostname: o.Cluster, Time: b.when, ProgramVersion: "cairn " + o.CairnVersion,
	})
	if err := b.runSteps(ctx, nsTasks, pvTasks, clusterTasks); err != nil {
		return nil, err
	}
	if err := b.saveNamespaces(ctx); err != nil {
		return nil, err
	}
	if err := b.saveOtherVersions(ctx); err != nil {
		return nil, err
	}
	volumes, err := b.saveVolumes(ctx)
	if err != nil {
		return nil, err
	}
	return b.finish(ctx, volumes)
}

func (b *backupRun) tags() []string {
	tags := []string{layout.TagBackup + b.opts.Name}
	if s := b.opts.Spec.Schedule; s != "" {
		tags = append(tags, layout.TagSchedule+s)
	}
	if b.info.Expires != nil {
		tags = append(tags, retention.ExpiryTag(*b.info.Expires))
	}
	return tags
}

// discover finds the resources; groups that fail are errors of the backup
// unless the include list shows that they cannot hold what was asked for.
func (b *backupRun) discover(ctx context.Context) error {
	start := time.Now()
	d, err := kube.Discover(ctx, b.cl.Discovery)
	if err != nil {
		return err
	}
	b.disc = d
	b.info.PreferredVersions = d.PreferredVersions
	b.info.ResourceVersions = map[string][]string{}
	b.discoverOtherVersions(ctx)
	b.log.logf("discovered %d listable resources in %d groups (%s)", len(d.Resources), len(d.PreferredVersions), since(start))
	for _, gv := range slices.Sorted(maps.Keys(d.Failed)) {
		group, version, ok := strings.Cut(gv, "/")
		if !ok {
			group, version = "", gv
		}
		if v, ok := d.PreferredVersions[group]; ok && v != version {
			b.log.warnf("discovery of %s failed; the group's resources are backed up at version %s: %v", gv, v, d.Failed[gv])
		} else if discoveryFailureMatters(b.sel.resources, group, d.Resources) {
			b.log.errorf("discovery of %s failed, its resources are not in the backup: %v", gv, d.Failed[gv])
		} else {
			b.log.warnf("discovery of %s failed (not needed by --include-resources): %v", gv, d.Failed[gv])
		}
	}
	for _, w := range b.sel.resources.Warnings(d.Resources) {
		b.log.warnf("%s", w)
	}
	return nil
}

// listNamespaces reads every namespace: the filters select among them,
// and a namespace labelled cairn.io/exclude-from-backup=true keeps its
// objects out.
func (b *backupRun) listNamespaces(ctx context.Context) error {
	nsRes, ok := b.disc.Find("namespaces")
	if !ok {
		return errors.New("the server does not list namespaces")
	}
	b.namespaces = map[string]*unstructured.Unstructured{}
	b.nsSelected = map[string]bool{}
	err := b.list(ctx, nsRes, "", "", func(obj *unstructured.Unstructured) error {
		ns := obj.GetName()
		b.namespaces[ns] = obj
		switch {
		case !b.sel.namespaces.Match(ns):
		case ExcludedByLabel(obj.GetLabels()):
			b.log.logf("namespace %s is labelled %s=true: its objects are not backed up", ns, ExclusionLabel(obj.GetLabels()))
		default:
			b.nsSelected[ns] = true
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list namespaces: %w", err)
	}
	for _, ns := range b.sel.namespaces.Literal() {
		if b.namespaces[ns] == nil {
			b.log.warnf("namespace %q does not exist", ns)
		}
	}
	b.log.logf("%d of %d namespaces selected", len(b.nsSelected), len(b.namespaces))
	return nil
}

// task is one list (or, with names, one set of reads) to do.
type task struct {
	res kube.Resource
	// namespace to list in; "" lists across all namespaces (objects are
	// then filtered) or a cluster-scoped resource.
	namespace string
	names     []string // read these objects instead of listing (needed ones)
}

// plan makes the list tasks: namespaced resources, cluster-scoped ones
// other than namespaces and PersistentVolumes, and PersistentVolumes.
func (b *backupRun) plan() (nsTasks, clusterTasks, pvTasks []task) {
	perNamespace := !b.sel.namespaces.All() && len(b.nsSelected) <= 8
	for _, r := range b.disc.Resources {
		if why := SkipReason(r); why != "" {
			b.log.logf("skipping %s: %s", r.Dir(), why)
			continue
		}
		if !b.sel.resources.Included(r) || b.sel.resources.Excluded(r) {
			continue
		}
		switch {
		case r.Namespaced && perNamespace:
			for _, ns := range slices.Sorted(maps.Keys(b.nsSelected)) {
				nsTasks = append(nsTasks, task{res: r, namespace: ns})
			}
		case r.Namespaced:
			if len(b.nsSelected) > 0 {
				nsTasks = append(nsTasks, task{res: r})
			}
		case !b.sel.allCluster || r.Dir() == "namespaces":
		case r.Dir() == "persistentvolumes":
			pvTasks = append(pvTasks, task{res: r})
		default:
			clusterTasks = append(clusterTasks, task{res: r})
		}
	}
	return nsTasks, clusterTasks, pvTasks
}

// saveNamespaces saves the Namespace objects of selected namespaces that
// have objects in the backup, or that pass the resource and label filters.
func (b *backupRun) saveNamespaces(ctx context.Context) error {
	nsRes, _ := b.disc.Find("namespaces")
	if b.sel.resources.Excluded(nsRes) {
		return nil
	}
	n := 0
	for _, ns := range slices.Sorted(maps.Keys(b.nsSelected)) {
		obj := b.namespaces[ns]
		hasItems := b.store.hasItems(ns)
		if !hasItems && !(b.sel.resources.Included(nsRes) && b.sel.labels.Match(obj.GetLabels())) {
			continue
		}
		// A namespace being deleted is left out like any object, unless
		// objects in it (not being deleted themselves: a deletion stuck on
		// a finalizer or a discovery failure) are in the backup and need it.
		if obj.GetDeletionTimestamp() != nil {
			if !hasItems {
				b.log.logf("namespace %s is being deleted: not backed up", ns)
				continue
			}
			b.log.warnf("namespace %s is being deleted; backed up because objects in it are not", ns)
		}
		if err := b.save(ctx, nsRes, obj); err != nil {
			return err
		}
		n++
	}
	b.log.logf("namespaces: %d saved", n)
	return nil
}

// saveVolumes runs the volume hook.
func (b *backupRun) saveVolumes(ctx context.Context) (*repo.ID, error) {
	if b.opts.Volumes == nil {
		return nil, nil
	}
	start := time.Now()
	pods, pvcs := b.store.podsAndClaims()
	in := VolumeInput{Pods: pods, PVCs: pvcs, Time: b.when, Logf: b.log.logf, Warnf: b.log.warnf, Hooks: b.hooks}
	tree, vols, err := b.opts.Volumes(ctx, b.a, in)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err != nil {
		b.log.errorf("volumes: %v", err)
	}
	for _, v := range vols {
		if v.Error != "" {
			b.log.errorf("volume %s of pod %s/%s: %s", v.Volume, v.Namespace, v.Pod, v.Error)
		}
	}
	b.info.Volumes = vols
	b.log.logf("volumes: %d saved (%s)", len(vols), since(start))
	return tree, nil
}

func describeSpec(s layout.BackupSpec, sel *selection) string {
	var parts []string
	add := func(k string, v []string) {
		if len(v) > 0 {
			parts = append(parts, k+"="+strings.Join(v, ","))
		}
	}
	add("include-namespaces", s.IncludeNamespaces)
	add("exclude-namespaces", s.ExcludeNamespaces)
	add("include-resources", s.IncludeResources)
	add("exclude-resources", s.ExcludeResources)
	if s.Selector != "" {
		parts = append(parts, "selector="+s.Selector)
	}
	add("or-selector", s.OrSelectors)
	switch {
	case sel.allCluster:
		parts = append(parts, "cluster-resources=all")
	case sel.neededCluster:
		parts = append(parts, "cluster-resources=needed")
	default:
		parts = append(parts, "cluster-resources=none")
	}
	return strings.Join(parts, " ")
}

func since(t time.Time) time.Duration { return time.Since(t).Round(time.Millisecond) }

func saverCount() int { return max(2, runtime.GOMAXPROCS(0)) }
