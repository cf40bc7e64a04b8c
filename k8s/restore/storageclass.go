package restore

import (
	"context"
	"slices"
	"strings"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// defaultClassAnnotations mark the default StorageClass (GA and beta).
var defaultClassAnnotations = []string{
	"storageclass.kubernetes.io/is-default-class",
	"storageclass.beta.kubernetes.io/is-default-class",
}

func isDefaultClass(obj *unstructured.Unstructured) bool {
	ann := obj.GetAnnotations()
	for _, a := range defaultClassAnnotations {
		if ann[a] == "true" {
			return true
		}
	}
	return false
}

// defaultClasses are the default StorageClasses of the target cluster,
// listed once, and those this restore made default.
type defaultClasses struct {
	mu    sync.Mutex
	names map[string]bool // nil until listed
}

// keepOneDefaultClass makes a backed-up default StorageClass an ordinary
// one when the target already has another default: with two defaults,
// the cluster picks the newest for every claim without a class, which is
// not what the target's owner chose. It returns the note for the item, or
// "" when the class stays as it was.
//
// The annotation is set to "false" rather than removed, so that the
// restored class says it is deliberately not the default.
func (rs *restorer) keepOneDefaultClass(ctx context.Context, obj *unstructured.Unstructured) string {
	if !isDefaultClass(obj) {
		return ""
	}
	dc := &rs.defaultSC
	dc.mu.Lock()
	defer dc.mu.Unlock()
	if dc.names == nil {
		list, err := rs.dyn.Resource(grStorageClass.WithVersion("v1")).List(ctx, metav1.ListOptions{})
		if err != nil {
			rs.warn("storage class %s is a default class; could not check the target for another default (%s), so it stays default", obj.GetName(), apiErrorText(err))
			return ""
		}
		dc.names = map[string]bool{}
		for i := range list.Items {
			if isDefaultClass(&list.Items[i]) {
				dc.names[list.Items[i].GetName()] = true
			}
		}
	}
	var others []string
	for n := range dc.names {
		if n != obj.GetName() {
			others = append(others, n)
		}
	}
	if len(others) == 0 {
		dc.names[obj.GetName()] = true
		return ""
	}
	slices.Sort(others)
	ann := obj.GetAnnotations()
	for _, a := range defaultClassAnnotations {
		if ann[a] == "true" {
			ann[a] = "false"
		}
	}
	obj.SetAnnotations(ann)
	return "was the default class in the backup; restored as not default, the target's default stays " + strings.Join(others, ", ")
}
