package restore

import (
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestRestoreStages(t *testing.T) {
	gr := func(s string) schema.GroupResource { return splitGR(s) }
	in := []schema.GroupResource{
		gr("widgets.example.com"), gr("services"), gr("deployments.apps"), gr("configmaps"),
		gr("customresourcedefinitions.apiextensions.k8s.io"), gr("pods"), gr("namespaces"),
		gr("ingresses.networking.k8s.io"), gr("configmaps"), gr("persistentvolumeclaims"),
		gr("persistentvolumes"), gr("storageclasses.storage.k8s.io"), gr("secrets"),
		gr("rolebindings.rbac.authorization.k8s.io"), gr("roles.rbac.authorization.k8s.io"),
		gr("serviceaccounts"), gr("replicasets.apps"), gr("endpoints"), gr("cronjobs.batch"),
		gr("clusterroles.rbac.authorization.k8s.io"), gr("clusterrolebindings.rbac.authorization.k8s.io"),
		gr("limitranges"), gr("priorityclasses.scheduling.k8s.io"), gr("statefulsets.apps"),
		gr("mutatingwebhookconfigurations.admissionregistration.k8s.io"), gr("validatingadmissionpolicybindings.admissionregistration.k8s.io"),
		gr("validatingwebhookconfigurations.admissionregistration.k8s.io"), gr("validatingadmissionpolicies.admissionregistration.k8s.io"),
		gr("apiservices.apiregistration.k8s.io"),
	}
	want := []string{
		"customresourcedefinitions.apiextensions.k8s.io", "namespaces", "storageclasses.storage.k8s.io",
		"persistentvolumes", "persistentvolumeclaims", "clusterroles.rbac.authorization.k8s.io",
		"roles.rbac.authorization.k8s.io", "serviceaccounts", "clusterrolebindings.rbac.authorization.k8s.io",
		"rolebindings.rbac.authorization.k8s.io", "secrets", "configmaps", "limitranges",
		"priorityclasses.scheduling.k8s.io", "pods", "replicasets.apps", "endpoints", "services",
		// the rest, alphabetically by resource.group
		"apiservices.apiregistration.k8s.io", "cronjobs.batch", "deployments.apps", "ingresses.networking.k8s.io",
		"statefulsets.apps", "widgets.example.com",
		// admission control last, policies before their bindings, webhooks
		"validatingadmissionpolicies.admissionregistration.k8s.io", "validatingadmissionpolicybindings.admissionregistration.k8s.io",
		"validatingwebhookconfigurations.admissionregistration.k8s.io", "mutatingwebhookconfigurations.admissionregistration.k8s.io",
	}
	var got []string
	for _, g := range RestoreStages(in) {
		got = append(got, grString(g))
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("stages:\n got %v\nwant %v", got, want)
	}
}

func TestNeverRestoreReason(t *testing.T) {
	for _, tc := range []struct {
		gr    string
		ns    string
		never bool
	}{
		{"nodes", "", true},
		{"events", "default", true},
		{"events.events.k8s.io", "default", true},
		{"endpointslices.discovery.k8s.io", "default", false}, // per object
		{"leases.coordination.k8s.io", "kube-system", true},
		{"componentstatuses", "", true},
		{"podcertificaterequests.certificates.k8s.io", "default", true},
		{"clustertrustbundles.certificates.k8s.io", "", false},
		{"configmaps", "kube-node-lease", true},
		{"configmaps", "default", false},
		{"endpoints", "default", false},
		{"pods", "default", false},
		{"namespaces", "", false},
	} {
		if got := neverRestoreReason(splitGR(tc.gr), tc.ns) != ""; got != tc.never {
			t.Errorf("%s in %q: never restored = %v, want %v", tc.gr, tc.ns, got, tc.never)
		}
	}
}
