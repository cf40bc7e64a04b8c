package restore

import (
	"context"
	"encoding/json"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
)

// restoreManagedFields gives a created or updated object the field
// managers it had when backed up, so that server-side-apply tools (Argo
// CD, Flux, kubectl apply --server-side) own their fields again instead
// of conflicting with cairn, which the create made owner of every field.
//
// The API server ignores managedFields sent on create (checked against
// the real API server: they are replaced by the creator's entry), but
// takes them as given from a patch that changes nothing else, without
// adding an entry of its own. The patch is a merge patch without a
// resourceVersion: a controller's write since the create does not make it
// fail. Done last, after status and ephemeral containers, whose writes
// would add cairn's entries again. A failure leaves the object restored,
// with a note and a warning.
func (rs *restorer) restoreManagedFields(ctx context.Context, ri dynamic.ResourceInterface, it *restoreItem) {
	if rs.opts.DryRun {
		return
	}
	managed, ok, _ := unstructured.NestedSlice(it.obj.Object, "metadata", "managedFields")
	if !ok || len(managed) == 0 {
		return // an old backup, or a cluster without field management
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"managedFields": managed}})
	if err == nil {
		_, err = ri.Patch(ctx, it.obj.GetName(), types.MergePatchType, patch, metav1.PatchOptions{FieldManager: restoreFieldManager})
	}
	if err != nil {
		note := "field managers not restored: " + apiErrorText(err)
		if it.result.Reason == "" {
			it.result.Reason = note
		}
		rs.warn("%s %s: %s", it.result.Resource, itemName(it.result), note)
	}
}
