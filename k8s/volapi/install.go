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
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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

// EstablishTimeout bounds how long Install waits for one CRD to be gone
// (when an earlier uninstall is still deleting it) and then established,
// when the caller's context has no deadline of its own: a CRD that never
// settles must end in an error, not a hang.
var EstablishTimeout = 2 * time.Minute

// Install server-side applies the CRDs (taking over fields another manager
// set: cairn owns its CRDs) and waits until the API server has
// established each, or ctx ends. Installing again changes nothing.
// installed gets each CRD's name once it is established (may be nil).
//
// A CRD that is still being deleted (`uninstall --crds` just before) is
// waited out first: applying to it would only update the terminating
// object, which then disappears, and the install would wait for a CRD
// that no longer exists.
func Install(ctx context.Context, dyn dynamic.Interface, installed func(name string)) error {
	crds, err := CRDs()
	if err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, EstablishTimeout)
		defer cancel()
	}
	for _, c := range crds {
		name := c.Obj.GetName()
		if err := WaitNotTerminating(ctx, dyn.Resource(CRDResource), name, "CRD "+name+" (with its custom resources)"); err != nil {
			return fmt.Errorf("%w: %w", ErrNotEstablished, err)
		}
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

// WaitNotTerminating returns once the object either does not exist or is
// not being deleted: what an install creates again right after an
// uninstall (a namespace, a CRD) must first be gone, or the apply lands on
// the dying object. what names it in errors ("CRD x").
func WaitNotTerminating(ctx context.Context, ri dynamic.ResourceInterface, name, what string) error {
	for {
		o, err := ri.Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return nil
		case err == nil && o.GetDeletionTimestamp() == nil:
			return nil
		case err != nil:
			return fmt.Errorf("read %s: %w", what, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s is still being deleted when %v%s; wait until it is gone, then install again", what, ctx.Err(), deletionState(o))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// deletionState says why an object is still there: its finalizers and
// the messages of its true conditions (a CRD's Terminating, a namespace's
// NamespaceContentRemaining).
func deletionState(o *unstructured.Unstructured) string {
	var parts []string
	if f := o.GetFinalizers(); len(f) > 0 {
		parts = append(parts, "finalizers "+strings.Join(f, ", "))
	}
	conds, _, _ := unstructured.NestedSlice(o.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["status"] == "True" && m["message"] != nil && m["message"] != "" {
			parts = append(parts, fmt.Sprintf("%v: %v", m["type"], m["message"]))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, "; ") + ")"
}

// waitEstablished polls a CRD's conditions; polling (not a watch) keeps
// this small, and establishing takes well under a second.
func waitEstablished(ctx context.Context, dyn dynamic.Interface, name string) error {
	var last string
	for {
		crd, err := dyn.Resource(CRDResource).Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			// Applied a moment ago: someone deleted it since.
			return fmt.Errorf("%w: %s was deleted while cairn was installing it; install again", ErrNotEstablished, name)
		case err == nil && crd.GetDeletionTimestamp() != nil:
			return fmt.Errorf("%w: %s is being deleted while cairn was installing it; install again once it is gone", ErrNotEstablished, name)
		case err == nil:
			established, refused := crdConditions(crd)
			if established {
				return nil
			}
			if refused != "" {
				return fmt.Errorf("%w: %s: names not accepted: %s", ErrNotEstablished, name, refused)
			}
			last = "not yet established"
		default:
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
