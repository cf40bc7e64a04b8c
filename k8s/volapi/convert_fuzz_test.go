package volapi

import (
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// FuzzItemsFrom: items read from the API server (anyone allowed to create
// them may write any JSON) never panic the decoders, and what decodes
// encodes back to the same spec and status.
func FuzzItemsFrom(f *testing.F) {
	f.Add([]byte(`{"apiVersion":"cairn.io/v1alpha1","kind":"VolumeRestore","metadata":{"name":"r"},"spec":{"pod":{"namespace":"a","name":"p","uid":"u"},"volume":"v","source":{"path":"/volumes/a/p/v"}}}`))
	f.Add([]byte(`{"apiVersion":"cairn.io/v1alpha1","kind":"VolumeBackup","metadata":{"name":"b"},"spec":{"node":"n","volume":"v"},"status":{"phase":"InProgress","bytes":-1}}`))
	f.Add([]byte(`{"apiVersion":"cairn.io/v1alpha1","kind":"VolumeRestore","spec":{"volume":7}}`))
	f.Fuzz(func(t *testing.T, js []byte) {
		u := &unstructured.Unstructured{}
		if u.UnmarshalJSON(js) != nil {
			return
		}
		if vr, err := VolumeRestoreFrom(u); err == nil {
			back, err := vr.ToUnstructured()
			if err != nil {
				t.Fatalf("decoded %+v does not encode: %v", vr, err)
			}
			again, err := VolumeRestoreFrom(back)
			if err != nil || !reflect.DeepEqual(again.Spec, vr.Spec) || !reflect.DeepEqual(again.Status, vr.Status) {
				t.Fatalf("round trip changed the item: %+v -> %+v (%v)", vr, again, err)
			}
		}
		if vb, err := VolumeBackupFrom(u); err == nil {
			back, err := vb.ToUnstructured()
			if err != nil {
				t.Fatalf("decoded %+v does not encode: %v", vb, err)
			}
			again, err := VolumeBackupFrom(back)
			if err != nil || !reflect.DeepEqual(again.Spec, vb.Spec) || !reflect.DeepEqual(again.Status, vb.Status) {
				t.Fatalf("round trip changed the item: %+v -> %+v (%v)", vb, again, err)
			}
		}
	})
}
