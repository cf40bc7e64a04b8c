package backup

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cairn-backup/cairn/k8s/kube"
	"github.com/cairn-backup/cairn/k8s/layout"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/archiver"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// itemStore collects the saved manifests' nodes until the trees are
// written, and what the saved objects refer to. Safe for concurrent use.
type itemStore struct {
	mu      sync.Mutex
	files   map[string]map[string][]*snapshot.Node // namespace ("" = cluster) -> resource dir -> files
	claimed map[string]bool                        // manifest paths
	items   map[string]int                         // per resource dir
	nsItems map[string]int
	needs   map[ObjectRef]string // -> why: the first object that needs it
	bytes   uint64

	keepPods   bool
	pods, pvcs []*unstructured.Unstructured

	// objects again at other versions: group/version -> like files
	versions map[[2]string]map[string]map[string][]*snapshot.Node
}

func newItemStore(keepPods bool) *itemStore {
	return &itemStore{
		files: map[string]map[string][]*snapshot.Node{}, claimed: map[string]bool{},
		items: map[string]int{}, nsItems: map[string]int{}, needs: map[ObjectRef]string{},
		keepPods: keepPods, versions: map[[2]string]map[string]map[string][]*snapshot.Node{},
	}
}

// claim reserves a manifest path; false if it was taken already.
func (s *itemStore) claim(p string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.claimed[p] {
		return false
	}
	s.claimed[p] = true
	return true
}

func (s *itemStore) add(ns string, r kube.Resource, obj *unstructured.Unstructured, n *snapshot.Node, refs []ObjectRef) {
	s.mu.Lock()
	defer s.mu.Unlock()
	dir := r.Dir()
	if s.files[ns] == nil {
		s.files[ns] = map[string][]*snapshot.Node{}
	}
	s.files[ns][dir] = append(s.files[ns][dir], n)
	s.items[dir]++
	s.bytes += n.Size
	if ns != "" {
		s.nsItems[ns]++
	}
	for _, ref := range refs {
		if s.needs[ref] == "" {
			s.needs[ref] = dir + " " + objName(obj)
		}
	}
	if s.keepPods {
		switch dir {
		case "pods":
			s.pods = append(s.pods, obj)
		case "persistentvolumeclaims":
			s.pvcs = append(s.pvcs, obj)
		}
	}
}

// need records that ref is needed, and why, unless it is already.
func (s *itemStore) need(ref ObjectRef, why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.needs[ref] == "" {
		s.needs[ref] = why
	}
}

// why says which object needs ref.
func (s *itemStore) why(ref ObjectRef) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.needs[ref]
}

// unsavedNeeds returns the referred-to objects not saved yet, sorted.
func (s *itemStore) unsavedNeeds() []ObjectRef {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ObjectRef
	for ref := range s.needs {
		if !s.claimed[ref.path()] {
			out = append(out, ref)
		}
	}
	slices.SortFunc(out, func(a, b ObjectRef) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// saved reports whether the object at manifest path p is in the backup.
func (s *itemStore) saved(p string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.claimed[p]
}

func (s *itemStore) hasItems(ns string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nsItems[ns] > 0
}

func (s *itemStore) counts() (map[string]int, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	total := 0
	for _, n := range s.items {
		total += n
	}
	return maps.Clone(s.items), total
}

func (s *itemStore) size() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes
}

func (s *itemStore) podsAndClaims() (pods, pvcs []*unstructured.Unstructured) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.pods), slices.Clone(s.pvcs)
}

// addVersion records the manifest of an object at another version.
func (s *itemStore) addVersion(group, version, ns, dir string, n *snapshot.Node) {
	s.mu.Lock()
	defer s.mu.Unlock()
	gv := [2]string{group, version}
	if s.versions[gv] == nil {
		s.versions[gv] = map[string]map[string][]*snapshot.Node{}
	}
	if s.versions[gv][ns] == nil {
		s.versions[gv][ns] = map[string][]*snapshot.Node{}
	}
	s.versions[gv][ns][dir] = append(s.versions[gv][ns][dir], n)
	s.bytes += n.Size
}

// dirNamespaces returns the namespaces ("" = cluster-scoped) in which
// objects of resource dir are saved, sorted.
func (s *itemStore) dirNamespaces(dir string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for ns, byDir := range s.files {
		if len(byDir[dir]) > 0 {
			out = append(out, ns)
		}
	}
	slices.Sort(out)
	return out
}

// saveTree writes the resources tree: cluster/<dir>/…, and
// namespaces/<ns>/<dir>/…; both directories exist even when empty.
func (s *itemStore) saveTree(ctx context.Context, a *archiver.Archiver, when time.Time) (repo.ID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return saveResources(ctx, a, when, s.files)
}

// saveVersionsTree writes the tree of layout.ResourceVersionsDir:
// <group>/<version>/ and below it as saveTree; nil when empty.
func (s *itemStore) saveVersionsTree(ctx context.Context, a *archiver.Archiver, when time.Time) (*repo.ID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.versions) == 0 {
		return nil, nil
	}
	byGroup := map[string]*snapshot.Tree{}
	for gv, files := range s.versions {
		id, err := saveResources(ctx, a, when, files)
		if err != nil {
			return nil, err
		}
		g := gv[0]
		if g == "" {
			g = layout.CoreGroupDir
		}
		if byGroup[g] == nil {
			byGroup[g] = &snapshot.Tree{}
		}
		byGroup[g].Nodes = append(byGroup[g].Nodes, dirNode(gv[1], id, when))
	}
	root := &snapshot.Tree{}
	for _, g := range slices.Sorted(maps.Keys(byGroup)) {
		id, err := a.SaveTree(ctx, byGroup[g])
		if err != nil {
			return nil, fmt.Errorf("save tree of %s/%s: %w", layout.ResourceVersionsDir, g, err)
		}
		root.Nodes = append(root.Nodes, dirNode(g, id, when))
	}
	id, err := a.SaveTree(ctx, root)
	if err != nil {
		return nil, fmt.Errorf("save tree of %s: %w", layout.ResourceVersionsDir, err)
	}
	return &id, nil
}

// saveResources writes cluster/<dir>/… and namespaces/<ns>/<dir>/… of
// files (namespace "" = cluster-scoped).
func saveResources(ctx context.Context, a *archiver.Archiver, when time.Time, files map[string]map[string][]*snapshot.Node) (repo.ID, error) {
	saveDirs := func(byDir map[string][]*snapshot.Node) (repo.ID, error) {
		t := &snapshot.Tree{Nodes: []*snapshot.Node{}}
		for _, dir := range slices.Sorted(maps.Keys(byDir)) {
			id, err := a.SaveTree(ctx, &snapshot.Tree{Nodes: byDir[dir]})
			if err != nil {
				return repo.ID{}, fmt.Errorf("save tree of %s: %w", dir, err)
			}
			t.Nodes = append(t.Nodes, dirNode(dir, id, when))
		}
		return a.SaveTree(ctx, t)
	}
	cluster, err := saveDirs(files[""])
	if err != nil {
		return repo.ID{}, err
	}
	nsTree := &snapshot.Tree{Nodes: []*snapshot.Node{}}
	for _, ns := range slices.Sorted(maps.Keys(files)) {
		if ns == "" {
			continue
		}
		id, err := saveDirs(files[ns])
		if err != nil {
			return repo.ID{}, err
		}
		nsTree.Nodes = append(nsTree.Nodes, dirNode(ns, id, when))
	}
	namespaces, err := a.SaveTree(ctx, nsTree)
	if err != nil {
		return repo.ID{}, fmt.Errorf("save tree of namespaces: %w", err)
	}
	return a.SaveTree(ctx, &snapshot.Tree{Nodes: []*snapshot.Node{
		dirNode("cluster", cluster, when), dirNode("namespaces", namespaces, when),
	}})
}

// Manifests hold Secrets (and ConfigMaps often hold credentials too), so a
// backup restored as files, by cairn or restic, is readable by its owner only.
const (
	manifestMode = 0o600
	manifestDir  = os.ModeDir | 0o700
)

func fileNode(name string, content []repo.ID, size uint64, when time.Time) *snapshot.Node {
	return &snapshot.Node{
		Name: name, Type: snapshot.NodeFile, Mode: manifestMode,
		ModTime: when, AccessTime: when, ChangeTime: when,
		Size: size, Content: content,
	}
}

func dirNode(name string, id repo.ID, when time.Time) *snapshot.Node {
	return &snapshot.Node{
		Name: name, Type: snapshot.NodeDir, Mode: manifestDir,
		ModTime: when, AccessTime: when, ChangeTime: when, Subtree: &id,
	}
}

// runLog is /logs/backup.log: timestamped lines; warnings and errors are
// also collected for backup.json. Safe for concurrent use.
type runLog struct {
	mu       sync.Mutex
	buf      strings.Builder
	echo     func(string)
	warnings []string
	errors   []string
}

func (l *runLog) write(level, msg string) {
	line := time.Now().UTC().Format("2006-01-02T15:04:05.000Z") + " " + level + " " + msg
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.WriteString(line + "\n")
	switch level {
	case "warning":
		l.warnings = append(l.warnings, msg)
	case "error":
		l.errors = append(l.errors, msg)
	}
	if l.echo != nil {
		l.echo(line)
	}
}

func (l *runLog) logf(format string, args ...any)   { l.write("info", fmt.Sprintf(format, args...)) }
func (l *runLog) warnf(format string, args ...any)  { l.write("warning", fmt.Sprintf(format, args...)) }
func (l *runLog) errorf(format string, args ...any) { l.write("error", fmt.Sprintf(format, args...)) }

func (l *runLog) problems() (warnings, errors []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.warnings), slices.Clone(l.errors)
}

func (l *runLog) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
