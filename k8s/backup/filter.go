package backup

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/cairn-backup/cairn/k8s/kube"
	"github.com/cairn-backup/cairn/k8s/layout"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
)

// What a backup selects: pure rules, no I/O.

// skippedResources are never backed up, with the reason.
var skippedResources = map[string]string{
	"events":                           "events are transient",
	"events.events.k8s.io":             "events are transient",
	"nodes":                            "nodes belong to the machines, not to the workloads",
	"csinodes.storage.k8s.io":          "CSI nodes belong to the machines",
	"volumeattachments.storage.k8s.io": "volume attachments belong to the machines",
	"resourceslices.resource.k8s.io":   "resource slices are published by drivers on each machine",
	"componentstatuses":                "component statuses are computed, not stored",
	"ipaddresses.networking.k8s.io":    "IP addresses are allocated by the API server for Services",
	// The work items of cairn's own node agents: a restore must not
	// hand them to the agents again.
	"volumebackups.cairn.io":  "cairn's volume work items belong to the backup that made them",
	"volumerestores.cairn.io": "cairn's volume work items belong to the restore that made them",
}

// skippedGroups are API groups never backed up.
var skippedGroups = map[string]string{
	"metrics.k8s.io":        "metrics are live measurements",
	"custom.metrics.k8s.io": "metrics are live measurements",
}

// SkipReason says why a resource is never backed up, or "" if it is.
func SkipReason(r kube.Resource) string {
	if !r.Listable() {
		return "cannot be listed"
	}
	if why, ok := skippedGroups[r.Group]; ok {
		return why
	}
	return skippedResources[r.Dir()]
}

// skipObject says why one object is never backed up, or "".
func skipObject(r kube.Resource, namespace string, labels map[string]string) string {
	switch r.Dir() {
	case "leases.coordination.k8s.io":
		switch {
		case namespace == "kube-node-lease":
			return "node heartbeat"
		case labels["apiserver.kubernetes.io/identity"] != "":
			return "API server heartbeat"
		}
	case "endpointslices.discovery.k8s.io":
		return kube.ClusterEndpointSlice(namespace, labels)
	}
	return ""
}

// countObjects is "1 object", "2 objects".
func countObjects(n int) string {
	if n == 1 {
		return "1 object"
	}
	return strconv.Itoa(n) + " objects"
}

// NamespaceFilter selects namespaces by glob patterns (path.Match syntax).
type NamespaceFilter struct {
	Include []string // empty or "*" = all
	Exclude []string
}

// Validate checks the patterns.
func (f NamespaceFilter) Validate() error {
	for _, p := range append(slices.Clone(f.Include), f.Exclude...) {
		if p == "" {
			return errors.New("empty namespace pattern")
		}
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("namespace pattern %q: %w", p, err)
		}
	}
	return nil
}

// All reports whether the filter keeps every namespace, whatever exists.
func (f NamespaceFilter) All() bool {
	return len(f.Exclude) == 0 && (len(f.Include) == 0 || slices.Contains(f.Include, "*"))
}

// Match reports whether namespace ns is selected.
func (f NamespaceFilter) Match(ns string) bool {
	if len(f.Include) > 0 && !matchAny(f.Include, ns) {
		return false
	}
	return !matchAny(f.Exclude, ns)
}

// Literal returns the include patterns that are plain names (no glob).
func (f NamespaceFilter) Literal() []string {
	var out []string
	for _, p := range f.Include {
		if !strings.ContainsAny(p, `*?[\`) {
			out = append(out, p)
		}
	}
	return out
}

func matchAny(patterns []string, s string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, s); ok {
			return true
		}
	}
	return false
}

// ResourceFilter selects resources by the names kubectl and Velero take
// (kube.ResourceFilter, shared with restore).
type ResourceFilter = kube.ResourceFilter

// LabelFilter selects objects by label selectors: an object passes when
// it matches any of them (no selector: every object passes).
type LabelFilter struct {
	selectors []labels.Selector
}

// NewLabelFilter parses -l and the --or-selector values.
func NewLabelFilter(selector string, or []string) (LabelFilter, error) {
	var f LabelFilter
	for i, s := range append([]string{selector}, or...) {
		if strings.TrimSpace(s) == "" {
			if i > 0 {
				return f, errors.New("empty --or-selector")
			}
			continue
		}
		sel, err := labels.Parse(s)
		if err != nil {
			return f, fmt.Errorf("label selector %q: %w", s, err)
		}
		f.selectors = append(f.selectors, sel)
	}
	return f, nil
}

// Empty reports whether the filter selects everything.
func (f LabelFilter) Empty() bool { return len(f.selectors) == 0 }

// Match reports whether an object with these labels passes.
func (f LabelFilter) Match(l map[string]string) bool {
	if len(f.selectors) == 0 {
		return true
	}
	set := labels.Set(l)
	for _, s := range f.selectors {
		if s.Matches(set) {
			return true
		}
	}
	return false
}

// Server returns the selector the API server can apply when there is one.
func (f LabelFilter) Server() string {
	if len(f.selectors) == 1 {
		return f.selectors[0].String()
	}
	return ""
}

// LabelVeleroExclude is Velero's exclusion label: it keeps objects out of
// cairn's backups too, so that clusters labelled for Velero need no change.
const LabelVeleroExclude = "velero.io/exclude-from-backup"

// ExclusionLabel returns the label that keeps an object with these labels
// out of backups (layout.LabelExclude or LabelVeleroExclude set to
// "true"), or "".
func ExclusionLabel(l map[string]string) string {
	for _, k := range []string{layout.LabelExclude, LabelVeleroExclude} {
		if v, ok := l[k]; ok && strings.EqualFold(v, "true") {
			return k
		}
	}
	return ""
}

// ExcludedByLabel reports whether labels carry layout.LabelExclude=true
// or LabelVeleroExclude=true.
func ExcludedByLabel(l map[string]string) bool { return ExclusionLabel(l) != "" }

// selection is a compiled layout.BackupSpec.
type selection struct {
	namespaces NamespaceFilter
	resources  ResourceFilter
	labels     LabelFilter
	// allCluster: every (selected) cluster-scoped object is backed up.
	allCluster bool
	// neededCluster: cluster-scoped objects the namespaced ones refer to
	// are backed up.
	neededCluster bool
}

func newSelection(spec layout.BackupSpec) (*selection, error) {
	s := &selection{
		namespaces: NamespaceFilter{Include: spec.IncludeNamespaces, Exclude: spec.ExcludeNamespaces},
		resources:  ResourceFilter{Include: spec.IncludeResources, Exclude: spec.ExcludeResources},
	}
	if err := s.namespaces.Validate(); err != nil {
		return nil, err
	}
	for _, t := range append(slices.Clone(spec.IncludeResources), spec.ExcludeResources...) {
		if strings.TrimSpace(t) == "" {
			return nil, errors.New("empty resource name")
		}
	}
	var err error
	if s.labels, err = NewLabelFilter(spec.Selector, spec.OrSelectors); err != nil {
		return nil, err
	}
	switch {
	case spec.IncludeClusterResources == nil:
		s.allCluster, s.neededCluster = s.namespaces.All(), true
	case *spec.IncludeClusterResources:
		s.allCluster, s.neededCluster = true, true
	}
	return s, nil
}

// ObjectRef names an object another one needs; Namespace is "" for a
// cluster-scoped one.
type ObjectRef struct {
	Resource, Group, Namespace, Name string
}

// Dir is the referenced resource's layout.ResourceDir.
func (o ObjectRef) Dir() string { return layout.ResourceDir(o.Resource, o.Group) }

// String is "<dir>/<name>" or "<dir>/<namespace>/<name>".
func (o ObjectRef) String() string {
	if o.Namespace != "" {
		return o.Dir() + "/" + o.Namespace + "/" + o.Name
	}
	return o.Dir() + "/" + o.Name
}

// path is the manifest path the referenced object is saved at.
func (o ObjectRef) path() string {
	return layout.ManifestPath(o.Namespace, o.Resource, o.Group, o.Name)
}

// builtinGroups are served by the API server itself; any other group's
// resources may come from a CustomResourceDefinition.
var builtinGroups = map[string]bool{
	"": true, "apps": true, "batch": true, "autoscaling": true, "policy": true,
	"admissionregistration.k8s.io": true, "apiextensions.k8s.io": true, "apiregistration.k8s.io": true,
	"authentication.k8s.io": true, "authorization.k8s.io": true, "certificates.k8s.io": true,
	"coordination.k8s.io": true, "discovery.k8s.io": true, "events.k8s.io": true,
	"flowcontrol.apiserver.k8s.io": true, "internal.apiserver.k8s.io": true, "networking.k8s.io": true,
	"node.k8s.io": true, "rbac.authorization.k8s.io": true, "resource.k8s.io": true,
	"scheduling.k8s.io": true, "storage.k8s.io": true, "storagemigration.k8s.io": true,
	"metrics.k8s.io": true,
}

// ClusterRefs returns the cluster-scoped objects that obj (of resource r)
// needs to work after a restore: the PersistentVolume bound to a claim,
// StorageClasses, the CustomResourceDefinition of a custom resource, the
// ClusterRole of a (Cluster)RoleBinding, IngressClass, PriorityClass,
// RuntimeClass.
func ClusterRefs(r kube.Resource, obj map[string]any) []ObjectRef {
	var refs []ObjectRef
	add := func(resource, group, name string) {
		ref := ObjectRef{Resource: resource, Group: group, Name: name}
		if name != "" && !slices.Contains(refs, ref) {
			refs = append(refs, ref)
		}
	}
	storageClass := func(name string) { add("storageclasses", "storage.k8s.io", name) }
	podSpec := func(fields ...string) {
		add("priorityclasses", "scheduling.k8s.io", str(obj, append(fields, "priorityClassName")...))
		add("runtimeclasses", "node.k8s.io", str(obj, append(fields, "runtimeClassName")...))
	}
	switch r.Dir() {
	case "persistentvolumeclaims":
		add("persistentvolumes", "", str(obj, "spec", "volumeName"))
		storageClass(str(obj, "spec", "storageClassName"))
		storageClass(str(obj, "metadata", "annotations", "volume.beta.kubernetes.io/storage-class"))
		add("volumeattributesclasses", "storage.k8s.io", str(obj, "spec", "volumeAttributesClassName"))
	case "persistentvolumes":
		storageClass(str(obj, "spec", "storageClassName"))
		add("volumeattributesclasses", "storage.k8s.io", str(obj, "spec", "volumeAttributesClassName"))
	case "rolebindings.rbac.authorization.k8s.io", "clusterrolebindings.rbac.authorization.k8s.io":
		if str(obj, "roleRef", "kind") == "ClusterRole" {
			add("clusterroles", "rbac.authorization.k8s.io", str(obj, "roleRef", "name"))
		}
	case "ingresses.networking.k8s.io":
		add("ingressclasses", "networking.k8s.io", str(obj, "spec", "ingressClassName"))
	case "pods":
		podSpec("spec")
	case "deployments.apps", "replicasets.apps", "daemonsets.apps", "jobs.batch", "replicationcontrollers":
		podSpec("spec", "template", "spec")
	case "statefulsets.apps":
		podSpec("spec", "template", "spec")
		spec, _ := obj["spec"].(map[string]any)
		tpls, _ := spec["volumeClaimTemplates"].([]any)
		for _, t := range tpls {
			if m, ok := t.(map[string]any); ok {
				storageClass(str(m, "spec", "storageClassName"))
			}
		}
	case "cronjobs.batch":
		podSpec("spec", "jobTemplate", "spec", "template", "spec")
	case "podtemplates":
		podSpec("template", "spec")
	}
	if !builtinGroups[r.Group] {
		add("customresourcedefinitions", "apiextensions.k8s.io", r.Resource+"."+r.Group)
	}
	return refs
}

// str returns the string at a path of nested maps, or "".
func str(obj map[string]any, fields ...string) string {
	var cur any = obj
	for _, f := range fields {
		m, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = m[f]
	}
	s, _ := cur.(string)
	return s
}

// ValidateBackupName checks that name can name a backup: a DNS-1123 label
// (lower-case letters, digits and '-', at most 63 characters), as it is
// used in tags, labels and directory names.
func ValidateBackupName(name string) error {
	if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
		return fmt.Errorf("invalid backup name %q: %s", name, strings.Join(errs, "; "))
	}
	return nil
}

// discoveryFailureMatters reports whether a group whose discovery failed
// may hold resources the backup asks for: always, unless every name of
// the include list matched a discovered resource and none names the group.
func discoveryFailureMatters(f ResourceFilter, group string, discovered []kube.Resource) bool {
	if len(f.Include) == 0 {
		return true
	}
	for _, tok := range f.Include {
		tok = strings.ToLower(strings.TrimSpace(tok))
		if tok == "*" {
			return true
		}
		if _, g, ok := strings.Cut(tok, "."); ok && g == strings.ToLower(group) {
			return true
		}
		if !slices.ContainsFunc(discovered, func(r kube.Resource) bool { return kube.MatchesResource(tok, r) }) {
			return true
		}
	}
	return false
}
