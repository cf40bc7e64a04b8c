package kube

import (
	"slices"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	rs := []Resource{
		{Resource: "services", Singular: "service", Kind: "Service", ShortNames: []string{"svc"}, Version: "v1"},
		{Group: "apps", Resource: "deployments", Singular: "deployment", Kind: "Deployment", ShortNames: []string{"deploy"}, Version: "v1"},
		{Group: "extensions.example.com", Resource: "deployments", Kind: "Deployment", Version: "v1"},
		{Group: "networking.k8s.io", Resource: "ingresses", Singular: "ingress", Kind: "Ingress", ShortNames: []string{"ing"}, Version: "v1"},
	}
	dirs, unmatched := Resolve([]string{"svc", "Deployment", "ingress.networking.k8s.io", "deploy.apps", "nosuch", "svc.apps", "nosuch"}, rs)
	if want := []string{"deployments.apps", "deployments.extensions.example.com", "ingresses.networking.k8s.io", "services"}; !slices.Equal(dirs, want) {
		t.Errorf("dirs %v, want %v", dirs, want)
	}
	if !slices.Equal(unmatched, []string{"nosuch", "svc.apps"}) {
		t.Errorf("unmatched %v", unmatched)
	}
	if all, none := Resolve([]string{"*"}, rs); len(all) != 4 || none != nil {
		t.Errorf("* resolved to %v %v", all, none)
	}
	f := ResourceFilter{Include: []string{"svc", "SVCS"}, Exclude: []string{"deploy", "widgets"}}
	if !f.Included(rs[0]) || f.Included(rs[1]) || !f.Excluded(rs[1]) || f.Excluded(rs[2]) {
		t.Error("Included/Excluded")
	}
	w := f.Warnings(rs)
	if len(w) != 2 || !strings.Contains(w[0], `"SVCS" matches no resource`) || !strings.Contains(w[1], `"widgets"`) {
		t.Errorf("warnings %q", w)
	}
}
