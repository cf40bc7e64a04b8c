package modifiers

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/client-go/kubernetes/scheme"
)

// Outcome says what the rules did to one object.
type Outcome struct {
	Matched []int // the rules whose conditions the object met
	// Applied are the matched rules whose patches were applied: a JSON
	// patch whose test operation fails is skipped whole.
	Applied []int
}

// Apply patches obj by every rule whose conditions it meets, in file
// order. gr is its resource ("deployments.apps", "pods"). As in Velero,
// every rule's conditions are judged on the object as given, not as an
// earlier rule changed it; the patches apply one after the other. A
// patch may change the name and the version, not the group or kind (the
// object would no longer be the resource it is restored as). On error
// obj is left unchanged.
func (r *Rules) Apply(obj *unstructured.Unstructured, gr schema.GroupResource) (Outcome, error) {
	var out Outcome
	if r == nil || len(r.rules) == 0 {
		return out, nil
	}
	var orig, doc []byte // the object's JSON, made for the first rule that needs it
	gvk, grs := obj.GroupVersionKind(), gr.String()
	for i, ru := range r.rules {
		if !ru.selects(obj, grs) {
			continue
		}
		if orig == nil {
			var err error
			if orig, err = obj.MarshalJSON(); err != nil {
				return out, fmt.Errorf("resource modifiers: encode %s %s: %w", grs, obj.GetName(), err)
			}
			doc = orig
		}
		if !ru.matchesDoc(orig) {
			continue
		}
		out.Matched = append(out.Matched, i)
		next, applied, err := ru.patch(doc, gvk)
		if err != nil {
			return out, fmt.Errorf("resource modifier %s: %w", r.Describe(i), err)
		}
		if applied {
			doc = next
			out.Applied = append(out.Applied, i)
		}
	}
	if len(out.Applied) == 0 {
		return out, nil
	}
	var u unstructured.Unstructured
	if err := u.UnmarshalJSON(doc); err != nil {
		return out, fmt.Errorf("resource modifiers: the patched object is not a Kubernetes object: %s", oneLine(err))
	}
	if got := u.GroupVersionKind(); got.Group != gvk.Group || got.Kind != gvk.Kind {
		return out, fmt.Errorf("resource modifiers: the patches change %s to %s: only the version may change", gvkString(gvk), gvkString(got))
	}
	obj.Object = u.Object
	return out, nil
}

func gvkString(gvk schema.GroupVersionKind) string {
	if gvk.Group == "" {
		return gvk.Version + " " + gvk.Kind
	}
	return gvk.Group + "/" + gvk.Version + " " + gvk.Kind
}

// selects reports whether obj meets the rule's conditions other than
// matches. Namespaces apply to namespaced objects only: a rule with
// namespaces still matches cluster-scoped objects of its groupResource.
func (ru *rule) selects(obj *unstructured.Unstructured, gr string) bool {
	if !ru.gr.MatchString(gr) {
		return false
	}
	if ns := obj.GetNamespace(); ns != "" && len(ru.namespaces) > 0 {
		in := false
		for _, re := range ru.namespaces {
			in = in || re.MatchString(ns)
		}
		if !in {
			return false
		}
	}
	if ru.name != nil && !ru.name.MatchString(obj.GetName()) {
		return false
	}
	return ru.selector == nil || ru.selector.Matches(labels.Set(obj.GetLabels()))
}

// matchesDoc reports whether the object's JSON passes the rule's matches:
// a path that is missing or holds another value does not.
func (ru *rule) matchesDoc(orig []byte) bool {
	if len(ru.matches) == 0 {
		return true
	}
	_, err := ru.matches.Apply(orig)
	return err == nil
}

// patch applies the rule's patches to doc. applied is false when a test
// operation failed (the rule is skipped, as in Velero).
func (ru *rule) patch(doc []byte, gvk schema.GroupVersionKind) (out []byte, applied bool, err error) {
	switch ru.kind {
	case jsonPatches:
		for j, op := range ru.ops {
			next, err := op.Apply(doc)
			if err == nil && op[0].Kind() == "replace" {
				// RFC 6902: the target must exist (the library adds it).
				if path, _ := op[0].Path(); !pointerExists(doc, path) {
					err = errors.New("doc is missing the path")
				}
			}
			if err != nil {
				kind := op[0].Kind()
				if kind == "test" {
					return nil, false, nil
				}
				path, _ := op[0].Path()
				return nil, false, fmt.Errorf("patches[%d] (%s %s): %s", j, kind, path, oneLine(err))
			}
			doc = next
		}
	case mergePatches:
		for j, p := range ru.docs {
			if doc, err = jsonpatch.MergePatch(doc, p); err != nil {
				return nil, false, fmt.Errorf("mergePatches[%d]: %s", j, oneLine(err))
			}
		}
	case strategicPatches:
		typed, err := scheme.Scheme.New(gvk)
		if err != nil {
			return nil, false, fmt.Errorf("strategicPatches need a built-in kind and %s is not one cairn knows: use mergePatches for it", gvkString(gvk))
		}
		for j, p := range ru.docs {
			if doc, err = strategicpatch.StrategicMergePatch(doc, p, typed); err != nil {
				return nil, false, fmt.Errorf("strategicPatches[%d]: %s", j, oneLine(err))
			}
		}
	}
	return doc, true, nil
}

// pointerExists reports whether the RFC 6901 pointer names a value in doc.
func pointerExists(doc []byte, pointer string) bool {
	var v any
	if json.Unmarshal(doc, &v) != nil {
		return false
	}
	if pointer == "" {
		return true
	}
	for _, tok := range strings.Split(pointer, "/")[1:] {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch c := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = c[tok]; !ok {
				return false
			}
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) || tok != strconv.Itoa(i) {
				return false
			}
			v = c[i]
		default:
			return false
		}
	}
	return true
}
