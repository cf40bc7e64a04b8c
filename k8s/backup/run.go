package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/k8s/kube"
	"github.com/cairn-backup/cairn/k8s/layout"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"golang.org/x/sync/errgroup"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"
)

// The work of a backup: listing, saving, writing the snapshot.

type saveJob struct {
	res kube.Resource
	obj *unstructured.Unstructured
}

// runTasks runs tasks with opts.Workers listers feeding the objects to a
// pool of savers. It returns when all are done; an error means the backup
// cannot go on (the repository failed, or ctx ended).
func (b *backupRun) runTasks(ctx context.Context, tasks []task) error {
	if len(tasks) == 0 {
		return ctx.Err()
	}
	// A failed save cancels gctx: the listers stop and the savers drain.
	savers, gctx := errgroup.WithContext(ctx)
	jobs := make(chan saveJob, 256)
	for range saverCount() {
		savers.Go(func() error {
			for j := range jobs {
				if gctx.Err() != nil {
					continue // drain
				}
				if err := b.save(gctx, j.res, j.obj); err != nil {
					return err
				}
			}
			return nil
		})
	}
	// Listing failures are recorded as errors of the backup; the listers
	// go on.
	taskCh := make(chan task)
	var listers errgroup.Group
	for range min(b.opts.Workers, len(tasks)) {
		listers.Go(func() error {
			for t := range taskCh {
				b.runTask(gctx, t, jobs)
			}
			return nil
		})
	}
feed:
	for _, t := range tasks {
		select {
		case taskCh <- t:
		case <-gctx.Done():
			break feed
		}
	}
	close(taskCh)
	_ = listers.Wait() // never fails
	close(jobs)
	err := savers.Wait()
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return err
}

// runTask lists (or reads) one task's objects and hands those selected to
// the savers. Failures are recorded as errors of the backup.
func (b *backupRun) runTask(ctx context.Context, t task, jobs chan<- saveJob) {
	start := time.Now()
	where := t.res.Dir()
	if t.namespace != "" {
		where += " in namespace " + t.namespace
	}
	send := func(obj *unstructured.Unstructured) error {
		select {
		case jobs <- saveJob{res: t.res, obj: obj}:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if t.names != nil {
		n := 0
		ri := dynamic.ResourceInterface(b.dyn.Resource(t.res.GVR()))
		if t.namespace != "" {
			ri = b.dyn.Resource(t.res.GVR()).Namespace(t.namespace)
		}
		for _, name := range t.names {
			ref := ObjectRef{Resource: t.res.Resource, Group: t.res.Group, Namespace: t.namespace, Name: name}
			why := b.store.why(ref)
			obj, err := ri.Get(ctx, name, metav1.GetOptions{})
			switch {
			case ctx.Err() != nil:
				return
			case apierrors.IsNotFound(err):
				b.log.logf("%s is needed by %s but does not exist", ref, why)
			case err != nil:
				b.log.errorf("get %s (needed by %s): %v", ref, why, err)
			case ExcludedByLabel(obj.GetLabels()):
				b.log.logf("%s is needed by %s but labelled %s=true: not backed up", ref, why, ExclusionLabel(obj.GetLabels()))
			case obj.GetDeletionTimestamp() != nil:
				b.log.logf("%s is needed by %s but being deleted: not backed up", ref, why)
			default:
				fixTypeMeta(t.res, obj)
				b.log.logf("%s added: needed by %s", ref, why)
				if send(obj) != nil {
					return
				}
				n++
			}
		}
		b.log.logf("%s: %s needed by others (%s)", where, countObjects(n), since(start))
		return
	}
	n := 0
	var leftOut []string // why objects were left out, one entry each
	err := b.list(ctx, t.res, t.namespace, b.sel.labels.Server(), func(obj *unstructured.Unstructured) error {
		switch b.accept(t.res, obj) {
		case acceptYes:
			n++
			return send(obj)
		case acceptExcluded:
			leftOut = append(leftOut, "labelled "+ExclusionLabel(obj.GetLabels())+"=true")
		case acceptDeleting:
			leftOut = append(leftOut, "being deleted")
			b.log.logf("%s: %s is being deleted (since %s): not backed up", where, objName(obj), obj.GetDeletionTimestamp().UTC().Format(time.RFC3339))
		}
		return nil
	})
	done := b.prog.Dirs.Add(1)
	b.prog.SetCurrent(fmt.Sprintf("%d/%d resources", done, b.tasksTotal))
	switch {
	case ctx.Err() != nil:
	case apierrors.IsNotFound(err) && n == 0:
		// Discovery listed the resource, but it is no longer served: its
		// CRD or APIService was deleted meanwhile. There is nothing left
		// to back up, which is not a failure of the backup.
		b.log.logf("%s: no longer served (deleted during the backup): nothing to back up (%s)", where, since(start))
	case err != nil:
		b.log.errorf("list %s: %v", where, err)
	case len(leftOut) > 0:
		b.log.logf("%s: %s, left out: %s (%s)", where, countObjects(n), countReasons(leftOut), since(start))
	default:
		b.log.logf("%s: %s (%s)", where, countObjects(n), since(start))
	}
}

type acceptance int

const (
	acceptNo acceptance = iota
	acceptYes
	acceptExcluded // by the exclusion label
	acceptDeleting // deletionTimestamp set: it is going away, as Velero leaves it out
)

// accept decides whether a listed object is backed up.
func (b *backupRun) accept(r kube.Resource, obj *unstructured.Unstructured) acceptance {
	ns := obj.GetNamespace()
	if r.Namespaced && !b.nsSelected[ns] {
		return acceptNo
	}
	l := obj.GetLabels()
	if skipObject(r, ns, l) != "" {
		return acceptNo
	}
	if !b.sel.labels.Match(l) {
		return acceptNo
	}
	if ExcludedByLabel(l) {
		return acceptExcluded
	}
	if obj.GetDeletionTimestamp() != nil {
		return acceptDeleting
	}
	return acceptYes
}

// objName is "<namespace>/<name>", or the name of a cluster-scoped object.
func objName(obj *unstructured.Unstructured) string {
	if ns := obj.GetNamespace(); ns != "" {
		return ns + "/" + obj.GetName()
	}
	return obj.GetName()
}

// countReasons sums up reasons: "2 labelled x=true, 1 being deleted".
func countReasons(reasons []string) string {
	counts := map[string]int{}
	var order []string
	for _, r := range reasons {
		if counts[r] == 0 {
			order = append(order, r)
		}
		counts[r]++
	}
	parts := make([]string, len(order))
	for i, r := range order {
		parts[i] = fmt.Sprintf("%d %s", counts[r], r)
	}
	return strings.Join(parts, ", ")
}

// list pages through a resource (in one namespace, or all) and calls fn
// for each object.
func (b *backupRun) list(ctx context.Context, r kube.Resource, namespace, selector string, fn func(*unstructured.Unstructured) error) error {
	var ri dynamic.ResourceInterface = b.dyn.Resource(r.GVR())
	if namespace != "" {
		ri = b.dyn.Resource(r.GVR()).Namespace(namespace)
	}
	opts := metav1.ListOptions{Limit: b.opts.PageSize, LabelSelector: selector}
	for {
		l, err := ri.List(ctx, opts)
		if err != nil {
			if apierrors.IsResourceExpired(err) {
				return fmt.Errorf("the list took too long and expired on the server (%w); run the backup again", err)
			}
			return err
		}
		for i := range l.Items {
			obj := &l.Items[i]
			fixTypeMeta(r, obj)
			if err := fn(obj); err != nil {
				return err
			}
		}
		if l.GetContinue() == "" {
			return nil
		}
		opts.Continue = l.GetContinue()
	}
}

// fixTypeMeta sets apiVersion and kind where a list left them out.
func fixTypeMeta(r kube.Resource, obj *unstructured.Unstructured) {
	if obj.GetAPIVersion() == "" {
		obj.SetAPIVersion(r.APIVersion())
	}
	if obj.GetKind() == "" {
		obj.SetKind(r.Kind)
	}
}

// save stores one object's manifest (once per path).
func (b *backupRun) save(ctx context.Context, r kube.Resource, obj *unstructured.Unstructured) error {
	ns := ""
	if r.Namespaced {
		ns = obj.GetNamespace()
	}
	name := obj.GetName()
	if !b.store.claim(layout.ManifestPath(ns, r.Resource, r.Group, name)) {
		return nil
	}
	if r.Group == "" && r.Resource == "pods" {
		return b.aroundManifest(ctx, obj, func() error { return b.saveManifest(ctx, r, ns, obj) })
	}
	return b.saveManifest(ctx, r, ns, obj)
}

// saveManifest writes one object's manifest.
func (b *backupRun) saveManifest(ctx context.Context, r kube.Resource, ns string, obj *unstructured.Unstructured) error {
	name := obj.GetName()
	buf, err := yaml.Marshal(obj.Object)
	if err != nil {
		return fmt.Errorf("encode %s/%s: %w", r.Dir(), name, err)
	}
	content, size, err := b.a.SaveReader(ctx, bytes.NewReader(buf))
	if err != nil {
		return fmt.Errorf("save %s/%s: %w", r.Dir(), name, err)
	}
	b.store.add(ns, r, obj, fileNode(name+".yaml", content, size, b.when), append(ClusterRefs(r, obj.Object), NamespacedRefs(r, obj.Object)...))
	b.prog.Files.Add(1)
	b.prog.Bytes.Add(size)
	return nil
}

// finish writes the log, backup.json and the trees, and saves the
// snapshot.
func (b *backupRun) finish(ctx context.Context, volumes *repo.ID) (*BackupResult, error) {
	info := b.info
	info.Items, info.TotalItems = b.store.counts()
	info.End = time.Now().UTC().Truncate(time.Millisecond)
	info.Hooks = b.hooks.sorted()
	info.Warnings, info.Errors = b.log.problems()
	info.Phase = layout.PhaseCompleted
	if len(info.Errors) > 0 {
		info.Phase = layout.PhasePartiallyFailed
	}
	b.log.logf("backup %s: %d objects, %d warnings, %d errors, took %s",
		info.Phase, info.TotalItems, len(info.Warnings), len(info.Errors), info.End.Sub(info.Start).Round(time.Millisecond))

	resources, err := b.store.saveTree(ctx, b.a, b.when)
	if err != nil {
		return nil, err
	}
	root := &snapshot.Tree{Nodes: []*snapshot.Node{dirNode(layout.ResourcesDir, resources, b.when)}}
	if versions, err := b.store.saveVersionsTree(ctx, b.a, b.when); err != nil {
		return nil, err
	} else if versions != nil {
		root.Nodes = append(root.Nodes, dirNode(layout.ResourceVersionsDir, *versions, b.when))
	}
	logFile, err := b.saveFile(ctx, layout.BackupLogFile, []byte(b.log.text()))
	if err != nil {
		return nil, err
	}
	logs, err := b.a.SaveTree(ctx, &snapshot.Tree{Nodes: []*snapshot.Node{logFile}})
	if err != nil {
		return nil, fmt.Errorf("save logs: %w", err)
	}
	root.Nodes = append(root.Nodes, dirNode(layout.LogsDir, logs, b.when))
	js, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", layout.BackupInfoFile, err)
	}
	infoFile, err := b.saveFile(ctx, layout.BackupInfoFile, append(js, '\n'))
	if err != nil {
		return nil, err
	}
	root.Nodes = append(root.Nodes, infoFile)
	if volumes != nil {
		root.Nodes = append(root.Nodes, dirNode(layout.VolumesDir, *volumes, b.when))
	}
	rootID, err := b.a.SaveTree(ctx, root)
	if err != nil {
		return nil, fmt.Errorf("save backup tree: %w", err)
	}
	sn, err := b.a.Finish(ctx, rootID, []string{layout.SnapshotPath(b.opts.Cluster)})
	if err != nil {
		return nil, err
	}
	return &BackupResult{Info: info, Snapshot: sn, Bytes: b.store.size()}, nil
}

func (b *backupRun) saveFile(ctx context.Context, name string, data []byte) (*snapshot.Node, error) {
	content, size, err := b.a.SaveReader(ctx, bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("save %s: %w", name, err)
	}
	return fileNode(name, content, size, b.when), nil
}
