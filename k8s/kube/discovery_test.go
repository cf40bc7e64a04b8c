package kube

import (
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var rwVerbs = []string{"create", "delete", "get", "list", "patch", "update", "watch"}

func TestResourcesFromLists(t *testing.T) {
	lists := []*metav1.APIResourceList{
		{GroupVersion: "v1", APIResources: []metav1.APIResource{
			{Name: "pods", Namespaced: true, Kind: "Pod", Verbs: rwVerbs, ShortNames: []string{"po"}},
			{Name: "pods/status", Namespaced: true, Kind: "Pod", Verbs: []string{"get", "patch"}},
			{Name: "bindings", Namespaced: true, Kind: "Binding", Verbs: []string{"create"}},
			{Name: "namespaces", Kind: "Namespace", Verbs: rwVerbs},
		}},
		{GroupVersion: "autoscaling/v2", APIResources: []metav1.APIResource{
			{Name: "horizontalpodautoscalers", Namespaced: true, Kind: "HorizontalPodAutoscaler", Verbs: rwVerbs},
		}},
		{GroupVersion: "autoscaling/v1", APIResources: nil},
		{GroupVersion: "example.com/v1beta1", APIResources: []metav1.APIResource{
			{Name: "widgets", SingularName: "widget", Namespaced: true, Kind: "Widget", Verbs: rwVerbs},
		}},
		nil,
		{GroupVersion: "bad/group/version"},
	}
	got, pref := resourcesFromLists(lists)
	var dirs []string
	for _, r := range got {
		dirs = append(dirs, r.Dir()+"@"+r.Version)
	}
	want := []string{"horizontalpodautoscalers.autoscaling@v2", "namespaces@v1", "pods@v1", "widgets.example.com@v1beta1"}
	if !slices.Equal(dirs, want) {
		t.Errorf("resources %v, want %v", dirs, want)
	}
	if pref[""] != "v1" || pref["autoscaling"] != "v2" || pref["example.com"] != "v1beta1" || len(pref) != 3 {
		t.Errorf("preferred versions %v", pref)
	}
	d := &Discovery{Resources: got}
	if r, ok := d.Find("pods"); !ok || r.Kind != "Pod" || !r.Namespaced || r.APIVersion() != "v1" {
		t.Errorf("Find(pods) = %+v %v", r, ok)
	}
	if r, ok := d.Find("widgets.example.com"); !ok || r.APIVersion() != "example.com/v1beta1" || r.GVR().Version != "v1beta1" {
		t.Errorf("Find(widgets) = %+v %v", r, ok)
	}
	if _, ok := d.Find("bindings"); ok {
		t.Error("create-only resource discovered")
	}
}

func TestOtherVersionsFrom(t *testing.T) {
	d := &Discovery{Resources: []Resource{
		{Group: "autoscaling", Version: "v2", Resource: "horizontalpodautoscalers", Kind: "HorizontalPodAutoscaler", Verbs: rwVerbs},
		{Group: "example.com", Version: "v2", Resource: "widgets", Kind: "Widget", Verbs: rwVerbs},
		{Group: "example.com", Version: "v1beta1", Resource: "gadgets", Kind: "Gadget", Verbs: rwVerbs},
	}}
	lists := []*metav1.APIResourceList{
		{GroupVersion: "autoscaling/v2", APIResources: []metav1.APIResource{{Name: "horizontalpodautoscalers", Verbs: rwVerbs}}},
		{GroupVersion: "autoscaling/v1", APIResources: []metav1.APIResource{
			{Name: "horizontalpodautoscalers", Verbs: rwVerbs}, {Name: "horizontalpodautoscalers/status", Verbs: rwVerbs},
		}},
		{GroupVersion: "example.com/v2", APIResources: []metav1.APIResource{{Name: "widgets", Verbs: rwVerbs}}},
		{GroupVersion: "example.com/v1", APIResources: []metav1.APIResource{{Name: "widgets", Verbs: rwVerbs}, {Name: "unknown", Verbs: rwVerbs}}},
		{GroupVersion: "example.com/v1beta1", APIResources: []metav1.APIResource{
			{Name: "widgets", Verbs: []string{"create"}}, {Name: "gadgets", Verbs: rwVerbs},
		}},
		nil,
	}
	var got []string
	for _, r := range otherVersionsFrom(d, lists) {
		got = append(got, r.Dir()+"@"+r.Version+"/"+r.Kind)
	}
	want := []string{"horizontalpodautoscalers.autoscaling@v1/HorizontalPodAutoscaler", "widgets.example.com@v1/Widget"}
	if !slices.Equal(got, want) {
		t.Errorf("other versions %v, want %v", got, want)
	}
}
