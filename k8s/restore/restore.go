// Package restore applies the manifests of a backup snapshot to a cluster:
// it reads the manifests (BackupSource), selects them (restore filters),
// orders them in stages (CRDs and namespaces first), transforms each
// object for its new home (metadata, namespace, storage class and image
// mappings) and creates or updates it, reporting per item.
package restore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cairn-backup/cairn/k8s/catalog"
	"github.com/cairn-backup/cairn/k8s/hooks"
	"github.com/cairn-backup/cairn/k8s/kube"
	"github.com/cairn-backup/cairn/k8s/layout"
	"github.com/cairn-backup/cairn/k8s/modifiers"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
)

// Existing-resource policies.
const (
	ExistingNone   = "none"   // leave existing objects alone (reported as skipped-exists)
	ExistingUpdate = "update" // update them to the backed-up object
)

// Actions of a restore item.
const (
	ActionCreated       = "created"
	ActionUpdated       = "updated"
	ActionSkippedExists = "skipped-exists"
	ActionSkipped       = "skipped" // filtered out or never restored; counted, not listed
	ActionFailed        = "failed"
)

// RestoreOptions say what to restore from a backup and how.
type RestoreOptions struct {
	// Name of the restore, put on every restored object as the label
	// cairn.io/restore-name; "" = "<backup>-<YYYYMMDDhhmmss>".
	Name string

	// Filters over what the backup holds. Namespaces are matched before
	// mapping, as globs; resources by the names a backup takes
	// (kube.ResourceFilter: plural, singular, kind or short name, optionally
	// .group, case-insensitive, "*" = all), known from the target's
	// discovery and, for resources it does not serve yet, from the backup;
	// a name matching nothing gets a warning. An object passes the
	// selectors when it matches Selector or any of OrSelectors (none given
	// = all pass).
	IncludeNamespaces, ExcludeNamespaces []string
	IncludeResources, ExcludeResources   []string
	Selector                             string
	OrSelectors                          []string
	// IncludeClusterResources: true restores the backup's cluster-scoped
	// objects, false none; nil (auto) restores them all when no namespace
	// filter is given, else only those the restored objects need: PVs of
	// restored claims, their storage classes, the CRDs of restored custom
	// resources, the PriorityClasses and RuntimeClasses of restored pods
	// and pod templates, the IngressClasses of Ingresses, the
	// ClusterRoleBindings of restored ServiceAccounts and the
	// ClusterRoles of those and of restored RoleBindings (see deps.go; a
	// binding whose accounts NamespaceMappings moves is restored as a copy
	// named <name>-<new namespace>, see rbac.go).
	IncludeClusterResources *bool

	NamespaceMappings    map[string]string // old -> new
	StorageClassMappings map[string]string // old -> new
	ImageMappings        []ImageMapping
	// Modifiers, if set, patch the objects (Velero's resource-modifier
	// rules, see modifiers.go) after the mappings above.
	Modifiers *modifiers.Rules

	// Hooks, if set, runs the restored pods' post.hook.restore.… exec
	// hooks (see hooks.go); nil runs none. Init container hooks are
	// added either way.
	Hooks hooks.Runner
	// HookPoll is how often a pod is read while an exec hook waits for
	// it; 0 = 1 s.
	HookPoll time.Duration

	// VolumeData, if set, restores the pod volume data the backup holds
	// (see volumes.go); nil restores manifests only, and the PVs of
	// volumes with data follow the rules for PVs without.
	VolumeData *VolumeDataOptions

	ExistingResourcePolicy string // ExistingNone ("" too) or ExistingUpdate
	// IncludeFinished restores completed or failed Jobs and pods that
	// succeeded or failed; by default they are skipped, as restored they
	// would run again.
	IncludeFinished bool
	// IncludeBootstrapTokens restores Secrets of type
	// bootstrap.kubernetes.io/token, skipped by default.
	IncludeBootstrapTokens bool
	// PreserveNodePorts keeps every node port of Services; by default only
	// those set by hand are kept (see explicitNodePorts).
	PreserveNodePorts bool
	// RestoreStatus names resources (as for IncludeResources) whose status
	// is restored (through the status subresource, after create); other
	// objects get their status from the cluster.
	RestoreStatus []string

	// DryRun sends every write as a server-side dry run: nothing changes.
	DryRun bool
	// Workers restore the objects of one stage in parallel; 0 = 8.
	Workers int
	// CRDTimeout bounds the wait for restored CRDs to be served; 0 = 1 min.
	CRDTimeout time.Duration
	// NamespaceTimeout bounds the wait for a namespace that is being
	// deleted to go, before it is created again; 0 = 2 min.
	NamespaceTimeout time.Duration
	// OnItem, if set, is told about every listed item when it is done; it
	// is never called concurrently.
	OnItem func(ItemResult)

	// beforeStatus, in tests, is called before each status write with the
	// object about to get it.
	beforeStatus func(*unstructured.Unstructured)
}

// ItemResult is what happened to one object.
type ItemResult struct {
	Resource  string `json:"resource"` // "<resource>.<group>"
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	// SourceNamespace is the namespace in the backup, when it was mapped.
	SourceNamespace string `json:"source_namespace,omitempty"`
	Action          string `json:"action"`
	Reason          string `json:"reason,omitempty"`
}

// RestoreResult describes a finished restore.
type RestoreResult struct {
	Name       string    `json:"name"`
	Backup     string    `json:"backup"`
	SnapshotID string    `json:"snapshot_id"`
	Cluster    string    `json:"cluster"`
	DryRun     bool      `json:"dry_run,omitempty"`
	Start      time.Time `json:"start"`
	End        time.Time `json:"end"`
	Phase      string    `json:"phase"`
	// Counts per "<resource>.<group>" and action, skipped objects included.
	Counts map[string]map[string]int `json:"counts"`
	// Skipped counts the objects filtered out or never restored; only
	// those with a reason that matters (a PV left to provisioning) are
	// in Items.
	Skipped  int          `json:"skipped"`
	Items    []ItemResult `json:"items"`
	Warnings []string     `json:"warnings,omitempty"`
	Errors   []string     `json:"errors,omitempty"`

	// Hooks are the restore hooks added (init containers) and run.
	Hooks []layout.HookResult `json:"hooks,omitempty"`

	// Modifiers say what each resource-modifier rule did.
	Modifiers []ModifierUse `json:"modifiers,omitempty"`
}

// Total counts the listed items with the action.
func (res *RestoreResult) Total(action string) int {
	n := 0
	for _, c := range res.Counts {
		n += c[action]
	}
	return n
}

// Restore restores a backup snapshot into the cluster. The repository's
// index must be loaded. Problems with single objects are reported in the
// result (phase PartiallyFailed or Failed); an error is returned only when
// the restore could not run at all, with the result so far.
func Restore(ctx context.Context, r *repo.Repository, sn *snapshot.Snapshot, cl *kube.Clients, opts RestoreOptions) (*RestoreResult, error) {
	src, err := OpenBackupSource(ctx, r, sn)
	if err != nil {
		return nil, err
	}
	return RestoreFrom(ctx, src, cl, opts)
}

// RestoreFrom is Restore from an opened backup.
func RestoreFrom(ctx context.Context, src *BackupSource, cl *kube.Clients, opts RestoreOptions) (*RestoreResult, error) {
	start := time.Now()
	backup := catalog.BackupName(src.Snapshot, src.Info)
	if opts.Name == "" {
		opts.Name = DefaultRestoreName(backup, start)
	}
	switch opts.ExistingResourcePolicy {
	case "":
		opts.ExistingResourcePolicy = ExistingNone
	case ExistingNone, ExistingUpdate:
	default:
		return nil, fmt.Errorf("existing-resource policy %q: use %s or %s", opts.ExistingResourcePolicy, ExistingNone, ExistingUpdate)
	}
	if opts.Workers <= 0 {
		opts.Workers = 8
	}
	if opts.CRDTimeout <= 0 {
		opts.CRDTimeout = time.Minute
	}
	if opts.NamespaceTimeout <= 0 {
		opts.NamespaceTimeout = 2 * time.Minute
	}
	if errs := validation.IsValidLabelValue(opts.Name); len(errs) > 0 {
		return nil, fmt.Errorf("restore name %q: %s (it becomes the label %s)", opts.Name, strings.Join(errs, "; "), layout.LabelRestoreName)
	}
	if err := validateMappings(opts); err != nil {
		return nil, err
	}
	filter, err := newRestoreFilter(opts)
	if err != nil {
		return nil, err
	}
	rs := &restorer{
		src: src, cl: cl, opts: opts, filter: filter,
		res: &RestoreResult{
			Name: opts.Name, Backup: backup, SnapshotID: src.Snapshot.ID.String(), Cluster: cl.Cluster,
			DryRun: opts.DryRun, Start: start, Counts: map[string]map[string]int{}, Items: []ItemResult{},
		},
	}
	rs.dyn = rs.dynamicClient()
	err = rs.run(ctx)
	rs.finish(err)
	return rs.res, err
}

// DefaultRestoreName is "<backup>-<YYYYMMDDhhmmss>" (UTC), shortened to
// fit a label value.
func DefaultRestoreName(backup string, t time.Time) string {
	ts := t.UTC().Format("20060102150405")
	b := labelValue(backup)
	if n := validation.LabelValueMaxLength - len(ts) - 1; len(b) > n {
		b = strings.TrimRight(b[:n], "-_.")
	}
	if b == "" {
		b = "restore"
	}
	return b + "-" + ts
}

// validateMappings checks that mapped names are valid names.
func validateMappings(opts RestoreOptions) error {
	for from, to := range opts.NamespaceMappings {
		if errs := validation.IsDNS1123Label(to); len(errs) > 0 {
			return fmt.Errorf("namespace mapping %s:%s: %q is not a valid namespace name: %s", from, to, to, strings.Join(errs, "; "))
		}
	}
	for from, to := range opts.StorageClassMappings {
		if errs := validation.IsDNS1123Subdomain(to); len(errs) > 0 {
			return fmt.Errorf("storage class mapping %s:%s: %q is not a valid storage class name: %s", from, to, to, strings.Join(errs, "; "))
		}
	}
	return nil
}

// restorer is one run of Restore.
type restorer struct {
	src    *BackupSource
	cl     *kube.Clients
	opts   RestoreOptions
	filter *restoreFilter

	api   *apiResources     // the target cluster's resources
	names resourceNames     // what filters match resources by (plan)
	vd    *volumeData       // the pod volume data restored
	dyn   dynamic.Interface // cl.Dynamic, reporting server warnings to the result

	seenWarnings map[string]bool

	mu  sync.Mutex // guards res, createdNS and the dry-run sets
	res *RestoreResult
	// createdNS are the namespaces this restore created.
	createdNS map[string]bool
	// In a dry run, namespaces and resources that would be created first:
	// objects in them cannot be validated by the server.
	dryNamespaces map[string]bool
	dryGroups     map[schema.GroupResource]bool
	// defaultSC keeps the target at one default StorageClass.
	defaultSC defaultClasses
	hooks     hookRun // guarded by mu
}

func (rs *restorer) run(ctx context.Context) error {
	api, err := discoverAPI(rs.cl)
	if err != nil {
		return err
	}
	rs.api = api
	for _, w := range api.warnings {
		rs.warn("%s", w)
	}
	if err := rs.loadVolumeData(ctx); err != nil {
		return err
	}
	items, err := rs.plan(ctx)
	if err != nil {
		return err
	}
	if err := rs.checkVolumeData(items); err != nil {
		return err
	}
	byGR := map[schema.GroupResource][]*restoreItem{}
	var grs []schema.GroupResource
	for _, it := range items {
		if _, ok := byGR[it.gr]; !ok {
			grs = append(grs, it.gr)
		}
		byGR[it.gr] = append(byGR[it.gr], it)
	}
	for _, gr := range RestoreStages(grs) {
		if err := ctx.Err(); err != nil {
			return err
		}
		rs.runStage(ctx, gr, byGR[gr])
		if gr == grCRD {
			rs.afterCRDs(ctx, byGR[gr])
		}
	}
	rs.waitHooks()
	return ctx.Err()
}

// record adds one item's outcome.
func (rs *restorer) record(it ItemResult, listed bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	c := rs.res.Counts[it.Resource]
	if c == nil {
		c = map[string]int{}
		rs.res.Counts[it.Resource] = c
	}
	c[it.Action]++
	if it.Action == ActionSkipped {
		rs.res.Skipped++
	}
	if !listed {
		return
	}
	rs.res.Items = append(rs.res.Items, it)
	if rs.opts.OnItem != nil {
		rs.opts.OnItem(it)
	}
}

func (rs *restorer) warn(format string, args ...any) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.res.Warnings = append(rs.res.Warnings, fmt.Sprintf(format, args...))
}

// dynamicClient is a client like cl.Dynamic whose server warnings
// ("v1 Endpoints is deprecated") go to the result, once each, instead of
// the log.
func (rs *restorer) dynamicClient() dynamic.Interface {
	if rs.cl.Config == nil {
		return rs.cl.Dynamic
	}
	cfg := rest.CopyConfig(rs.cl.Config)
	cfg.WarningHandler, cfg.WarningHandlerWithContext = restoreWarnings{rs}, nil
	d, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return rs.cl.Dynamic
	}
	return d
}

type restoreWarnings struct{ rs *restorer }

func (w restoreWarnings) HandleWarningHeader(code int, _ string, text string) {
	if code != 299 || text == "" {
		return
	}
	rs := w.rs
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.seenWarnings == nil {
		rs.seenWarnings = map[string]bool{}
	}
	if !rs.seenWarnings[text] {
		rs.seenWarnings[text] = true
		rs.res.Warnings = append(rs.res.Warnings, "server: "+text)
	}
}

// finish sorts the items and sets the phase.
func (rs *restorer) finish(err error) {
	res := rs.res
	res.End = time.Now()
	slices.SortStableFunc(res.Items, cmpItems)
	failed := res.Total(ActionFailed)
	done := res.Total(ActionCreated) + res.Total(ActionUpdated) + res.Total(ActionSkippedExists)
	for _, it := range res.Items {
		if it.Action == ActionFailed {
			res.Errors = append(res.Errors, fmt.Sprintf("%s %s: %s", it.Resource, itemName(it), it.Reason))
		}
	}
	rs.waitHooks() // none left running when the run ended early
	sortHooks(res.Hooks)
	res.Errors = append(res.Errors, rs.hooks.errs...)
	switch {
	case err != nil:
		res.Phase = layout.PhaseFailed
		msg := err.Error()
		if errors.Is(err, context.Canceled) {
			msg = "restore interrupted: " + msg
		}
		res.Errors = append(res.Errors, msg)
	case failed == 0 && len(rs.hooks.errs) == 0:
		res.Phase = layout.PhaseCompleted
	case failed == 0:
		res.Phase = layout.PhasePartiallyFailed // a Fail restore hook failed
	case done > 0:
		res.Phase = layout.PhasePartiallyFailed
	default:
		res.Phase = layout.PhaseFailed
	}
}

func cmpItems(a, b ItemResult) int {
	ga, gb := splitGR(a.Resource), splitGR(b.Resource)
	if c := compareRestoreOrder(ga, gb); c != 0 {
		return c
	}
	if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
		return c
	}
	return strings.Compare(a.Name, b.Name)
}

func splitGR(s string) schema.GroupResource {
	r, g := layout.SplitResourceDir(s)
	return schema.GroupResource{Group: g, Resource: r}
}

// itemName is "ns/name" or "name".
func itemName(it ItemResult) string {
	if it.Namespace == "" {
		return it.Name
	}
	return it.Namespace + "/" + it.Name
}
