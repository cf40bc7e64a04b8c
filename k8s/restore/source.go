package restore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/cairn-backup/cairn/k8s/layout"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"
)

// Manifest is one object's file in a backup snapshot.
type Manifest struct {
	Path      string // slash path in the snapshot
	Namespace string // "" = cluster-scoped
	Resource  string
	Group     string
	Name      string
	node      *snapshot.Node
}

// GroupResource of the manifest's object.
func (m Manifest) GroupResource() schema.GroupResource {
	return schema.GroupResource{Group: m.Group, Resource: m.Resource}
}

// ParseManifestPath undoes ManifestPath: it accepts
// /resources/cluster/<res>/<name>.yaml and
// /resources/namespaces/<ns>/<res>/<name>.yaml.
func ParseManifestPath(p string) (Manifest, bool) {
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	if len(parts) < 4 || parts[0] != layout.ResourcesDir {
		return Manifest{}, false
	}
	// Empty, "." and ".." parts would make the path name another file than
	// layout.ManifestPath gives for what is parsed from it.
	for _, c := range parts {
		if c == "" || c == "." || c == ".." {
			return Manifest{}, false
		}
	}
	var m Manifest
	switch {
	case parts[1] == "cluster" && len(parts) == 4:
	case parts[1] == "namespaces" && len(parts) == 5:
		m.Namespace = parts[2]
	default:
		return Manifest{}, false
	}
	dir, file := parts[len(parts)-2], parts[len(parts)-1]
	name, ok := strings.CutSuffix(file, ".yaml")
	if !ok || name == "" || dir == "" || (m.Namespace == "" && parts[1] == "namespaces") {
		return Manifest{}, false
	}
	m.Path = path.Clean("/" + p)
	m.Resource, m.Group = layout.SplitResourceDir(dir)
	if m.Resource == "" || layout.ResourceDir(m.Resource, m.Group) != dir { // "pods." names no group
		return Manifest{}, false
	}
	m.Name = name
	return m, true
}

// BackupSource reads the manifests of one backup snapshot. The repository's
// index must be loaded.
type BackupSource struct {
	Snapshot  *snapshot.Snapshot
	Info      *layout.BackupInfo // nil when the snapshot has no readable backup.json
	Manifests []Manifest         // in snapshot order
	// others: per manifest path, the object's copies at other versions
	// (version -> file), from /resource-versions.
	others map[string]map[string]*snapshot.Node
	r      *repo.Repository
}

// OpenBackupSource lists the manifests of a backup snapshot.
func OpenBackupSource(ctx context.Context, r *repo.Repository, sn *snapshot.Snapshot) (*BackupSource, error) {
	s := &BackupSource{Snapshot: sn, r: r}
	loader := snapshot.NewTreeLoader(r, 256)
	if n, err := snapshot.FindNode(ctx, loader, *sn.Tree, "/"+layout.BackupInfoFile); err == nil && n.Type == snapshot.NodeFile {
		if buf, err := s.readNode(ctx, n); err == nil {
			info := &layout.BackupInfo{}
			if json.Unmarshal(buf, info) == nil {
				s.Info = info
			}
		}
	}
	res, err := snapshot.FindNode(ctx, loader, *sn.Tree, "/"+layout.ResourcesDir)
	if errors.Is(err, snapshot.ErrPathNotFound) {
		return nil, fmt.Errorf("snapshot %s is not a cluster backup: it has no /%s directory", sn.ID.Str(), layout.ResourcesDir)
	}
	if err != nil {
		return nil, fmt.Errorf("read backup %s: %w", sn.ID.Str(), err)
	}
	if res.Type != snapshot.NodeDir || res.Subtree == nil {
		return nil, fmt.Errorf("snapshot %s is not a cluster backup: /%s is not a directory", sn.ID.Str(), layout.ResourcesDir)
	}
	err = snapshot.Walk(ctx, loader, *res.Subtree, func(p string, n *snapshot.Node) error {
		if n.Type != snapshot.NodeFile {
			return nil
		}
		if m, ok := ParseManifestPath("/" + layout.ResourcesDir + p); ok {
			m.node = n
			s.Manifests = append(s.Manifests, m)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list manifests of backup %s: %w", sn.ID.Str(), err)
	}
	if err := s.listOtherVersions(ctx, loader); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *BackupSource) readNode(ctx context.Context, n *snapshot.Node) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(int(n.Size))
	for _, id := range n.Content {
		data, err := s.r.LoadBlob(ctx, repo.DataBlob, id, nil)
		if err != nil {
			return nil, err
		}
		buf.Write(data)
	}
	return buf.Bytes(), nil
}

// Read returns a manifest's YAML.
func (s *BackupSource) Read(ctx context.Context, m Manifest) ([]byte, error) {
	if m.node == nil {
		return nil, fmt.Errorf("%s: not listed in the backup", m.Path)
	}
	buf, err := s.readNode(ctx, m.node)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", m.Path, err)
	}
	return buf, nil
}

// Object reads and decodes a manifest and checks that it is the object its
// path says.
func (s *BackupSource) Object(ctx context.Context, m Manifest) (*unstructured.Unstructured, error) {
	buf, err := s.Read(ctx, m)
	if err != nil {
		return nil, err
	}
	return decodeManifest(m, buf)
}

// decodeManifest parses YAML into an object and checks it against the
// manifest's path.
func decodeManifest(m Manifest, buf []byte) (*unstructured.Unstructured, error) {
	js, err := yaml.YAMLToJSON(buf)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", m.Path, err)
	}
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(js); err != nil {
		return nil, fmt.Errorf("parse %s: %w", m.Path, err)
	}
	gv, err := schema.ParseGroupVersion(obj.GetAPIVersion())
	if err != nil {
		return nil, fmt.Errorf("parse %s: apiVersion: %w", m.Path, err)
	}
	switch {
	case gv.Group != m.Group:
		return nil, fmt.Errorf("%s holds a %s object, not one of group %q", m.Path, obj.GroupVersionKind(), m.Group)
	case obj.GetName() != m.Name:
		return nil, fmt.Errorf("%s holds an object named %q", m.Path, obj.GetName())
	case obj.GetNamespace() != m.Namespace:
		return nil, fmt.Errorf("%s holds an object in namespace %q", m.Path, obj.GetNamespace())
	}
	return obj, nil
}
