package volapi

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/deploy"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"
)

// CRDResource is where CustomResourceDefinitions live.
var CRDResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// FieldManager owns the fields cairn applies.
const FieldManager = "cairn"

// CRDFile is one CRD as stored in deploy/crds.
type CRDFile struct {
	Path string // inside deploy/, e.g. crds/cairn.io_volumebackups.yaml
	YAML []byte // as written, comments included
	Obj  *unstructured.Unstructured
}

// CRDs returns the embedded CRDs, sorted by file name.
func CRDs() ([]CRDFile, error) {
	paths, err := fs.Glob(deploy.CRDs, "crds/*.yaml")
	if err != nil {
		return nil, err
	}
	slices.Sort(paths)
	var out []CRDFile
	for _, p := range paths {
		raw, err := fs.ReadFile(deploy.CRDs, p)
		if err != nil {
			return nil, err
		}
		js, err := yaml.YAMLToJSON(raw)
		if err != nil {
			return nil, fmt.Errorf("deploy/%s: %w", p, err)
		}
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(js); err != nil {
			return nil, fmt.Errorf("deploy/%s: %w", p, err)
		}
		if obj.GetKind() != "CustomResourceDefinition" {
			return nil, fmt.Errorf("deploy/%s holds a %s, not a CustomResourceDefinition", p, obj.GetKind())
		}
		out = append(out, CRDFile{Path: p, YAML: raw, Obj: obj})
	}
	if len(out) == 0 {
		return nil, errors.New("no CRDs embedded (deploy/crds is empty)")
	}
	return out, nil
}

// ErrNotEstablished is returned when a CRD was applied but the API server
// did not establish it in time, or refused its names.
var ErrNotEstablished = errors.New("CRD not established")

// Install server-side applies the CRDs (taking over fields another manager
// set: cairn owns its CRDs) and waits until the API server has
// established each, or ctx ends. Installing again changes nothing.
// installed gets each CRD's name once it is established (may be nil).
func Install(ctx context.Context, dyn dynamic.Interface, installed func(name string)) error {
	crds, err := CRDs()
	if err != nil {
		return err
	}
	for _, c := range crds {
		_, err := dyn.Resource(CRDResource).Apply(ctx, c.Obj.GetName(), c.Obj, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
		if err != nil {
			return fmt.Errorf("apply CRD %s: %w (installing CRDs needs cluster-admin rights)", c.Obj.GetName(), err)
		}
	}
	for _, c := range crds {
		if err := waitEstablished(ctx, dyn, c.Obj.GetName()); err != nil {
			return err
		}
		if installed != nil {
			installed(c.Obj.GetName())
		}
	}
	return nil
}

// waitEstablished polls a CRD's conditions; polling (not a watch) keeps
// this small, and establishing takes well under a second.
func waitEstablished(ctx context.Context, dyn dynamic.Interface, name string) error {
	var last string
	for {
		crd, err := dyn.Resource(CRDResource).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			established, refused := crdConditions(crd)
			if established {
				return nil
			}
			if refused != "" {
				return fmt.Errorf("%w: %s: names not accepted: %s", ErrNotEstablished, name, refused)
			}
			last = "not yet established"
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %s: %s when %v; see `kubectl describe crd %s`", ErrNotEstablished, name, last, ctx.Err(), name)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// crdConditions reads Established=True, and the message of
// NamesAccepted=False (another CRD holds a name).
func crdConditions(crd *unstructured.Unstructured) (established bool, refused string) {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if !ok {
			continue
		}
		switch {
		case m["type"] == "Established" && m["status"] == "True":
			established = true
		case m["type"] == "NamesAccepted" && m["status"] == "False":
			refused, _ = m["message"].(string)
			if refused = strings.TrimSpace(refused); refused == "" {
				refused = "no reason given"
			}
		}
	}
	return established, refused
}
