// Package restorelog keeps what each cluster restore did in the
// repository, as Velero keeps restore results and logs in its bucket: a
// small snapshot per restore (a restore record, see k8s/layout) holding
// /restore.json and /restore.log, and reads them back without a cluster.
// Any machine with the repository, and restic, sees them.
package restorelog

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/k8s/catalog"
	"github.com/cairn-backup/cairn/k8s/layout"
	"github.com/cairn-backup/cairn/k8s/restore"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/archiver"
)

// Record is /restore.json: the restore's result (the fields of
// `cluster restore --json`, at the top level) and how it was asked for.
type Record struct {
	*restore.RestoreResult
	CairnVersion  string `json:"cairn_version,omitempty"`
	SourceCluster string `json:"source_cluster,omitempty"` // the cluster the backup is of
	Spec          Spec   `json:"spec"`
	// Error says why the restore stopped before its end ("" = it ran to
	// the end; its items' problems are in Errors and Items).
	Error string `json:"error,omitempty"`
}

// Spec is how a restore was asked for: its options without the
// callbacks and tuning.
type Spec struct {
	IncludeNamespaces       []string               `json:"include_namespaces,omitempty"`
	ExcludeNamespaces       []string               `json:"exclude_namespaces,omitempty"`
	IncludeResources        []string               `json:"include_resources,omitempty"`
	ExcludeResources        []string               `json:"exclude_resources,omitempty"`
	Selector                string                 `json:"selector,omitempty"`
	OrSelectors             []string               `json:"or_selectors,omitempty"`
	IncludeClusterResources *bool                  `json:"include_cluster_resources,omitempty"` // nil = auto
	NamespaceMappings       map[string]string      `json:"namespace_mappings,omitempty"`
	StorageClassMappings    map[string]string      `json:"storage_class_mappings,omitempty"`
	ImageMappings           []restore.ImageMapping `json:"image_mappings,omitempty"`
	ExistingResourcePolicy  string                 `json:"existing_resource_policy,omitempty"`
	PreserveNodePorts       bool                   `json:"preserve_nodeports,omitempty"`
	IncludeFinished         bool                   `json:"include_finished,omitempty"`
	IncludeBootstrapTokens  bool                   `json:"include_bootstrap_tokens,omitempty"`
	RestoreStatus           []string               `json:"restore_status,omitempty"`
	RestoreVolumes          bool                   `json:"restore_volumes"`
	// ResourceModifiers names the resource-modifier rules given, one each.
	ResourceModifiers []string `json:"resource_modifiers,omitempty"`
}

// SpecOf records the options of a restore.
func SpecOf(o restore.RestoreOptions) Spec {
	policy := o.ExistingResourcePolicy
	if policy == "" {
		policy = restore.ExistingNone
	}
	var rules []string
	for i := range o.Modifiers.Len() {
		rules = append(rules, o.Modifiers.Describe(i))
	}
	return Spec{
		ResourceModifiers: rules,
		IncludeNamespaces: o.IncludeNamespaces, ExcludeNamespaces: o.ExcludeNamespaces,
		IncludeResources: o.IncludeResources, ExcludeResources: o.ExcludeResources,
		Selector: o.Selector, OrSelectors: o.OrSelectors, IncludeClusterResources: o.IncludeClusterResources,
		NamespaceMappings: o.NamespaceMappings, StorageClassMappings: o.StorageClassMappings, ImageMappings: o.ImageMappings,
		ExistingResourcePolicy: policy, PreserveNodePorts: o.PreserveNodePorts,
		IncludeFinished: o.IncludeFinished, IncludeBootstrapTokens: o.IncludeBootstrapTokens,
		RestoreStatus: o.RestoreStatus, RestoreVolumes: o.VolumeData != nil,
	}
}

// Lines says the spec in a few "Title: value" lines, for people.
func (s *Spec) Lines() []string {
	or := func(l []string, none string) string {
		if len(l) == 0 {
			return none
		}
		return strings.Join(l, ", ")
	}
	mapping := func(m map[string]string) string {
		var l []string
		for _, k := range slices.Sorted(maps.Keys(m)) {
			l = append(l, k+":"+m[k])
		}
		return or(l, "<none>")
	}
	var images []string
	for _, m := range s.ImageMappings {
		images = append(images, m.From+":"+m.To)
	}
	cluster := "auto"
	if s.IncludeClusterResources != nil {
		cluster = fmt.Sprint(*s.IncludeClusterResources)
	}
	selectors := s.OrSelectors
	if s.Selector != "" {
		selectors = append([]string{s.Selector}, selectors...)
	}
	var flags []string
	for _, f := range []struct {
		on   bool
		name string
	}{{s.PreserveNodePorts, "preserve-nodeports"}, {s.IncludeFinished, "include-finished"},
		{s.IncludeBootstrapTokens, "include-bootstrap-tokens"}, {!s.RestoreVolumes, "restore-volumes=false"}} {
		if f.on {
			flags = append(flags, f.name)
		}
	}
	return []string{
		"Namespaces: included: " + or(s.IncludeNamespaces, "*") + "; excluded: " + or(s.ExcludeNamespaces, "<none>"),
		"Resources: included: " + or(s.IncludeResources, "*") + "; excluded: " + or(s.ExcludeResources, "<none>"),
		"Cluster-scoped resources: " + cluster,
		"Label selector: " + or(selectors, "<none>"),
		"Namespace mappings: " + mapping(s.NamespaceMappings),
		"Storage class mappings: " + mapping(s.StorageClassMappings),
		"Image mappings: " + or(images, "<none>"),
		"Existing resource policy: " + s.ExistingResourcePolicy,
		"Status restored for: " + or(s.RestoreStatus, "<none>"),
		"Resource modifiers: " + or(s.ResourceModifiers, "<none>"),
		"Other options: " + or(flags, "<none>"),
	}
}

// Counts sums up a restore's items by what happened to them.
type Counts struct {
	Created int `json:"created"`
	Updated int `json:"updated"`
	Existed int `json:"existed"`
	Skipped int `json:"skipped"` // filtered out or never restored
	Failed  int `json:"failed"`
}

// CountsOf sums up res.
func CountsOf(res *restore.RestoreResult) Counts {
	return Counts{
		Created: res.Total(restore.ActionCreated), Updated: res.Total(restore.ActionUpdated),
		Existed: res.Total(restore.ActionSkippedExists), Skipped: res.Skipped, Failed: res.Total(restore.ActionFailed),
	}
}

// Tracker notes when each item of a running restore was done, for the
// log. Its OnItem wrapper is called as restore.RestoreOptions.OnItem is:
// never concurrently.
type Tracker struct {
	items []trackedItem
}

type trackedItem struct {
	at time.Time
	it restore.ItemResult
}

// Wrap returns an OnItem callback that notes the item and calls next
// (nil: none).
func (t *Tracker) Wrap(next func(restore.ItemResult)) func(restore.ItemResult) {
	return func(it restore.ItemResult) {
		t.items = append(t.items, trackedItem{at: time.Now(), it: it})
		if next != nil {
			next(it)
		}
	}
}

// Log is the text of /restore.log: the start, the options, one line per
// listed item (when it was done, if tr saw it; tr may be nil), warnings,
// errors and the end. Times are UTC.
func Log(rec *Record, tr *Tracker) string {
	var b strings.Builder
	line := func(at time.Time, format string, args ...any) {
		b.WriteString(at.UTC().Format("2006-01-02T15:04:05.000Z") + " ")
		fmt.Fprintf(&b, format, args...)
		b.WriteByte('\n')
	}
	res := rec.RestoreResult
	from := ""
	if rec.SourceCluster != "" {
		from = " of cluster " + rec.SourceCluster
	}
	short := res.SnapshotID
	if len(short) > 8 {
		short = short[:8]
	}
	version := ""
	if rec.CairnVersion != "" {
		version = " by cairn " + rec.CairnVersion
	}
	line(res.Start, "restore %s of backup %s (snapshot %s%s) into cluster %s started%s", res.Name, res.Backup, short, from, res.Cluster, version)
	for _, l := range rec.Spec.Lines() {
		line(res.Start, "%s", l)
	}
	items := make([]trackedItem, 0, len(res.Items))
	if tr != nil && len(tr.items) > 0 {
		items = tr.items
	} else {
		for _, it := range res.Items {
			items = append(items, trackedItem{at: res.End, it: it})
		}
	}
	for _, t := range items {
		it := t.it
		where := it.Name
		if it.Namespace != "" {
			where = it.Namespace + "/" + it.Name
		}
		if it.SourceNamespace != "" {
			where += " (from namespace " + it.SourceNamespace + ")"
		}
		if it.Reason != "" {
			where += ": " + it.Reason
		}
		line(t.at, "%s %s %s", it.Action, it.Resource, where)
	}
	for _, w := range res.Warnings {
		line(res.End, "warning: %s", w)
	}
	for _, e := range res.Errors {
		line(res.End, "error: %s", e)
	}
	if rec.Error != "" {
		line(res.End, "error: the restore stopped: %s", rec.Error)
	}
	c := CountsOf(res)
	line(res.End, "restore %s: %s in %s: %d created, %d updated, %d existed, %d failed, %d skipped",
		res.Name, res.Phase, res.End.Sub(res.Start).Round(time.Millisecond), c.Created, c.Updated, c.Existed, c.Failed, c.Skipped)
	return b.String()
}

// Tags are the tags of rec's record.
func Tags(rec *Record) []string {
	return []string{layout.TagRestoreRecord, layout.TagRestore + rec.Name, layout.TagRestoreOf + rec.Backup}
}

// Save writes rec (and its log, from tr; may be nil) as a restore record
// and returns its snapshot. The repository's index must be loaded and a
// lock held; a shared one is enough, as for a backup.
func Save(ctx context.Context, r *repo.Repository, rec *Record, tr *Tracker) (*snapshot.Snapshot, error) {
	if rec == nil || rec.RestoreResult == nil || rec.Name == "" {
		return nil, fmt.Errorf("save restore record: %w", errNoResult)
	}
	js, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("save restore record: encode %s: %w", layout.RestoreInfoFile, err)
	}
	a := archiver.NewArchiver(r, archiver.ArchiveOptions{
		Tags: Tags(rec), Hostname: rec.Cluster, Time: rec.Start, ProgramVersion: "cairn " + rec.CairnVersion,
	})
	sn, err := catalog.SaveRecord(ctx, a, []catalog.RecordFile{{Name: layout.RestoreInfoFile, Data: append(js, '\n')},
		{Name: layout.RestoreLogFile, Data: []byte(Log(rec, tr))}}, rec.End, layout.RestoreRecordPath(rec.Cluster))
	if err != nil {
		return nil, fmt.Errorf("save restore record: %w", err)
	}
	return sn, nil
}
