// Package agent is the node agent's work loop: it watches the
// VolumeBackups and VolumeRestores of its node (k8s/volapi), claims each
// with a resourceVersion-guarded status update, renews a heartbeat while it
// copies the volume's directory (found by k8s/kubelet) into a snapshot of
// its own, or restores a backed-up tree into it, and reports the outcome in
// the item's status. VolumeRestores are created without a node: the agent
// whose node runs the item's pod takes it (restore.go). An item a dead
// agent left half-done is retried, or failed after too many attempts, as
// volapi.Decide says; it is never reported done.
package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cairn-backup/cairn/k8s/metrics"
	"github.com/cairn-backup/cairn/k8s/volapi"
	"github.com/cairn-backup/cairn/repo"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// Config is what an agent needs.
type Config struct {
	Dyn         dynamic.Interface
	Namespace   string // where the items live ("" = all namespaces)
	Node        string
	KubeletRoot string
	// Repo is the repository, opened, with its index loaded. The agent
	// writes to it from several goroutines.
	Repo *repo.Repository
	// Lock takes a shared lock for one volume's backup or restore; the returned
	// function releases it.
	Lock func(ctx context.Context) (func(), error)
	// ID names this agent instance (volapi.AgentID).
	ID         string
	Concurrent int // volumes copied at once; 0 = 3
	// Heartbeat is how often the owner renews an item's heartbeat (and
	// progress); an item is stale after StaleAfter heartbeats. 0 = 10 s.
	Heartbeat   time.Duration
	MaxAttempts int32 // attempts at one item before it is failed; 0 = 3
	// MountWait bounds how long a restore waits for the kubelet to make
	// the volume's directory (and for its claim to be bound); 0 = 10 min.
	MountWait time.Duration
	Version   string
	Logf      func(format string, args ...any)
	// Metrics counts finished items; nil counts nothing.
	Metrics *metrics.Agent
}

// StaleAfter is how many heartbeat intervals pass without a renewal before
// an item is taken for left by a dead agent: slow API calls must not make
// a live owner look dead.
const StaleAfter = 6

// Agent runs the work loop.
type Agent struct {
	cfg   Config
	items dynamic.ResourceInterface
	queue workqueue.TypedInterface[string]

	restoreInf *restoreInformers

	mu      sync.Mutex
	running map[string]bool // items this process copies now
}

// New checks cfg and returns an agent.
func New(cfg Config) (*Agent, error) {
	if cfg.Dyn == nil || cfg.Repo == nil || cfg.Node == "" || cfg.ID == "" || cfg.KubeletRoot == "" {
		return nil, errors.New("agent: internal error: incomplete configuration")
	}
	if cfg.Concurrent <= 0 {
		cfg.Concurrent = 3
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 10 * time.Second
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.MountWait <= 0 {
		cfg.MountWait = 10 * time.Minute
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if cfg.Lock == nil {
		cfg.Lock = func(ctx context.Context) (func(), error) {
			l, err := cfg.Repo.Lock(ctx, false)
			if err != nil {
				return nil, err
			}
			return func() { _ = l.Unlock(context.WithoutCancel(ctx)) }, nil
		}
	}
	var items dynamic.ResourceInterface = cfg.Dyn.Resource(volapi.VolumeBackupResource)
	if cfg.Namespace != "" {
		items = cfg.Dyn.Resource(volapi.VolumeBackupResource).Namespace(cfg.Namespace)
	}
	return &Agent{cfg: cfg, items: items, running: map[string]bool{}}, nil
}

func (ag *Agent) ttl() time.Duration { return StaleAfter * ag.cfg.Heartbeat }

// key is how the queue names an item.
func key(u metav1.Object) string { return u.GetNamespace() + "/" + u.GetName() }

// Run watches the node's items and works on them until ctx ends. Items
// in progress when ctx ends are released (phase InProgress, no owner, no
// heartbeat): the next agent retries them at once, counting the attempt.
func (ag *Agent) Run(ctx context.Context) error {
	sel := volapi.LabelNode + "=" + volapi.NodeLabelValue(ag.cfg.Node)
	// The resync replays every item: an item whose owner died sends no
	// event, so its heartbeat is looked at again this way (client-go's
	// floor for a resync is one second).
	resync := max(2*ag.cfg.Heartbeat, time.Second)
	f := dynamicinformer.NewFilteredDynamicSharedInformerFactory(ag.cfg.Dyn, resync, ag.cfg.Namespace,
		func(o *metav1.ListOptions) { o.LabelSelector = sel })
	inf := f.ForResource(volapi.VolumeBackupResource).Informer()
	ag.queue = workqueue.NewTyped[string]()
	add := func(obj any) {
		if u, ok := obj.(*unstructured.Unstructured); ok {
			ag.queue.Add(key(u))
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: add, UpdateFunc: func(_, obj any) { add(obj) },
	}); err != nil {
		return err
	}
	if err := inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
		ag.cfg.Logf("watch VolumeBackups: %v (retrying)", err)
	}); err != nil {
		return err
	}
	ri, err := ag.startRestoreInformers(ctx, resync)
	if err != nil {
		return err
	}
	ag.restoreInf = ri
	ag.cfg.Logf("agent %s watching VolumeBackups and VolumeRestores labelled %s (and unassigned VolumeRestores of pods on node %s) in %s; kubelet root %s; %d volumes at once",
		ag.cfg.ID, sel, ag.cfg.Node, nsName(ag.cfg.Namespace), ag.cfg.KubeletRoot, ag.cfg.Concurrent)
	f.Start(ctx.Done())
	var wg sync.WaitGroup
	for range ag.cfg.Concurrent {
		wg.Go(func() {
			for {
				k, quit := ag.queue.Get()
				if quit {
					return
				}
				ag.process(ctx, k)
				ag.queue.Done(k)
			}
		})
	}
	<-ctx.Done()
	ag.queue.ShutDownWithDrain()
	wg.Wait()
	f.Shutdown()
	ri.shutdown()
	ag.cfg.Logf("agent %s stopped", ag.cfg.ID)
	return nil
}

func nsName(ns string) string {
	if ns == "" {
		return "all namespaces"
	}
	return "namespace " + ns
}

// process decides about one item and, if it is to be copied, copies it.
func (ag *Agent) process(ctx context.Context, k string) {
	if ctx.Err() != nil {
		return
	}
	switch prefix, item := splitKey(k); prefix {
	case keyRestore:
		ag.processRestore(ctx, item)
		return
	case keyAssign:
		ag.assign(ctx, item)
		return
	}
	name := k[len(nsOf(k))+1:]
	items := ag.itemsIn(nsOf(k))
	u, err := items.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) || ctx.Err() != nil {
		return
	}
	if err != nil {
		ag.cfg.Logf("%s: %v", k, err)
		ag.queue.Add(k) // the next resync comes anyway; try again now
		return
	}
	vb, err := volapi.VolumeBackupFrom(u)
	if err != nil {
		ag.cfg.Logf("%s: %v", k, err)
		return
	}
	if vb.Spec.Node != ag.cfg.Node {
		return // labelled for this node by a hash collision, or by hand
	}
	ag.claimAndRun(ctx, k, k, "copying", vb.Status.Phase, vb.Status.Ownership,
		func(msg string, now time.Time) error {
			st := vb.Status
			st.Phase, st.Message, st.CompletionTime, st.Progress = volapi.PhaseFailed, msg, &metav1.Time{Time: now}, nil
			if err := ag.writeStatus(ctx, items, vb, st); err != nil {
				return err
			}
			ag.cfg.Metrics.VolumeBackup(metrics.ResultFailed, 0, 0, since(vb.Status.StartTime, now))
			return nil
		},
		func(own volapi.Ownership, now time.Time) error {
			return ag.writeStatus(ctx, items, vb, volapi.VolumeBackupStatus{
				Phase: volapi.PhaseInProgress, StartTime: &metav1.Time{Time: now}, Ownership: own})
		},
		func() { ag.work(ctx, items, k) })
}

// claimAndRun is the claim protocol both kinds of item follow (see
// volapi.Decide): an item this agent works on already is left alone; one
// that agents stopped on too often is failed (fail writes that status);
// a free or abandoned one is claimed (claim writes InProgress with the
// new ownership: a conflict means another agent was faster) and run while
// runKey marks it as this agent's.
func (ag *Agent) claimAndRun(ctx context.Context, k, runKey, doing string, phase volapi.Phase, own volapi.Ownership,
	fail func(msg string, now time.Time) error, claim func(own volapi.Ownership, now time.Time) error, run func()) {
	ag.mu.Lock()
	mine := ag.running[runKey]
	ag.mu.Unlock()
	if mine {
		return
	}
	now := time.Now()
	switch act := volapi.Decide(phase, own, ag.cfg.ID, now, ag.ttl(), ag.cfg.MaxAttempts); act {
	case volapi.Leave:
	case volapi.GiveUp:
		msg := fmt.Sprintf("failed: the agent %s it stopped %d times (last %s); see that agent's log", doing, own.Attempts, owner(own.Agent))
		if err := fail(msg, now); err == nil {
			ag.cfg.Logf("%s: %s", k, msg)
		}
	case volapi.Claim, volapi.Retry:
		if act == volapi.Retry {
			ag.cfg.Logf("%s: retrying, left half-done by %s (attempt %d of %d)", k, owner(own.Agent), own.Attempts+1, ag.cfg.MaxAttempts)
		}
		next := volapi.Ownership{Agent: ag.cfg.ID, Heartbeat: &metav1.MicroTime{Time: now}, Attempts: own.Attempts + 1}
		if err := claim(next, now); err != nil {
			if !apierrors.IsConflict(err) {
				ag.cfg.Logf("%s: claim: %v", k, err)
			}
			return // changed meanwhile: its update event brings it back
		}
		ag.mu.Lock()
		ag.running[runKey] = true
		ag.mu.Unlock()
		run()
		ag.mu.Lock()
		delete(ag.running, runKey)
		ag.mu.Unlock()
	}
}

// since is how long ago an item was last claimed (0 if never).
func since(start *metav1.Time, now time.Time) time.Duration {
	if start == nil {
		return 0
	}
	return now.Sub(start.Time)
}

func owner(agent string) string {
	if agent == "" {
		return "an agent that was stopped"
	}
	return agent
}

func nsOf(k string) string {
	for i := range k {
		if k[i] == '/' {
			return k[:i]
		}
	}
	return ""
}

func (ag *Agent) itemsIn(ns string) dynamic.ResourceInterface {
	return ag.cfg.Dyn.Resource(volapi.VolumeBackupResource).Namespace(ns)
}

// writeStatus replaces vb's status with st, guarded by vb's
// resourceVersion: it fails with a conflict if the item changed.
func (ag *Agent) writeStatus(ctx context.Context, items dynamic.ResourceInterface, vb *volapi.VolumeBackup, st volapi.VolumeBackupStatus) error {
	next := *vb
	next.Status = st
	u, err := next.ToUnstructured()
	if err != nil {
		return err
	}
	out, err := items.UpdateStatus(ctx, u, metav1.UpdateOptions{FieldManager: "cairn-agent"})
	if err != nil {
		return err
	}
	vb.ResourceVersion = out.GetResourceVersion()
	vb.Status = st
	return nil
}
