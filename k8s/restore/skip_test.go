package restore

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestSkipRuleReason(t *testing.T) {
	cases := []struct {
		name  string
		gr    schema.GroupResource
		doc   string
		rules skipRules
		skip  string // part of the reason; "" = restored
	}{
		{"running pod", grPod, `{apiVersion: v1, kind: Pod, metadata: {name: p}, status: {phase: Running}}`, skipRules{}, ""},
		{"succeeded pod", grPod, `{apiVersion: v1, kind: Pod, metadata: {name: p}, status: {phase: Succeeded}}`, skipRules{}, "finished (Succeeded)"},
		{"failed pod", grPod, `{apiVersion: v1, kind: Pod, metadata: {name: p}, status: {phase: Failed}}`, skipRules{}, "finished (Failed)"},
		{"failed pod, included", grPod, `{apiVersion: v1, kind: Pod, metadata: {name: p}, status: {phase: Failed}}`, skipRules{IncludeFinished: true}, ""},
		{"mirror pod", grPod, `{apiVersion: v1, kind: Pod, metadata: {name: p, annotations: {kubernetes.io/config.mirror: abc}}, status: {phase: Running}}`, skipRules{IncludeFinished: true}, "mirror pod"},
		{"running job", grJob, `{apiVersion: batch/v1, kind: Job, metadata: {name: j}, status: {active: 1}}`, skipRules{}, ""},
		{"complete job", grJob, `{apiVersion: batch/v1, kind: Job, metadata: {name: j}, status: {conditions: [{type: Complete, status: "True"}]}}`, skipRules{}, "job finished"},
		{"failed job", grJob, `{apiVersion: batch/v1, kind: Job, metadata: {name: j}, status: {conditions: [{type: Failed, status: "True"}]}}`, skipRules{}, "job finished"},
		{"condition false", grJob, `{apiVersion: batch/v1, kind: Job, metadata: {name: j}, status: {conditions: [{type: Complete, status: "False"}]}}`, skipRules{}, ""},
		{"succeeded with time", grJob, `{apiVersion: batch/v1, kind: Job, metadata: {name: j}, status: {succeeded: 1, completionTime: "2026-01-01T00:00:00Z"}}`, skipRules{}, "job finished"},
		{"succeeded without time", grJob, `{apiVersion: batch/v1, kind: Job, metadata: {name: j}, status: {succeeded: 1}}`, skipRules{}, ""},
		{"complete job, included", grJob, `{apiVersion: batch/v1, kind: Job, metadata: {name: j}, status: {conditions: [{type: Complete, status: "True"}]}}`, skipRules{IncludeFinished: true}, ""},
		{"automanaged apiservice", grAPIService, `{apiVersion: apiregistration.k8s.io/v1, kind: APIService, metadata: {name: v1.apps, labels: {kube-aggregator.kubernetes.io/automanaged: onstart}}}`, skipRules{IncludeFinished: true, IncludeBootstrapTokens: true}, "API server"},
		{"user apiservice", grAPIService, `{apiVersion: apiregistration.k8s.io/v1, kind: APIService, metadata: {name: v1beta1.metrics.k8s.io}}`, skipRules{}, ""},
		{"bootstrap token", grSecret, `{apiVersion: v1, kind: Secret, metadata: {name: bootstrap-token-abcdef}, type: bootstrap.kubernetes.io/token}`, skipRules{}, "bootstrap token"},
		{"bootstrap token, included", grSecret, `{apiVersion: v1, kind: Secret, metadata: {name: bootstrap-token-abcdef}, type: bootstrap.kubernetes.io/token}`, skipRules{IncludeBootstrapTokens: true}, ""},
		{"opaque secret", grSecret, `{apiVersion: v1, kind: Secret, metadata: {name: s}, type: Opaque}`, skipRules{}, ""},
		{"service account token secret", grSecret, `{apiVersion: v1, kind: Secret, metadata: {name: t}, type: kubernetes.io/service-account-token}`, skipRules{}, ""},
		{"kube-apiserver trust bundle", grClusterTrustBundle, `{apiVersion: certificates.k8s.io/v1beta1, kind: ClusterTrustBundle, metadata: {name: b}, spec: {signerName: kubernetes.io/kube-apiserver-serving}}`, skipRules{}, "old cluster's certificate authorities"},
		{"own trust bundle", grClusterTrustBundle, `{apiVersion: certificates.k8s.io/v1beta1, kind: ClusterTrustBundle, metadata: {name: b}, spec: {signerName: example.com/internal-ca}}`, skipRules{}, ""},
		{"trust bundle without signer", grClusterTrustBundle, `{apiVersion: certificates.k8s.io/v1beta1, kind: ClusterTrustBundle, metadata: {name: b}, spec: {trustBundle: x}}`, skipRules{}, ""},
		{"controller's endpoint slice", grEndpointSlice, `{apiVersion: discovery.k8s.io/v1, kind: EndpointSlice, metadata: {name: e, namespace: x, labels: {endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io}}}`, skipRules{}, "made by the cluster"},
		{"kubernetes service's slice", grEndpointSlice, `{apiVersion: discovery.k8s.io/v1, kind: EndpointSlice, metadata: {name: kubernetes, namespace: default, labels: {kubernetes.io/service-name: kubernetes}}}`, skipRules{}, "API servers"},
		{"user's endpoint slice", grEndpointSlice, `{apiVersion: discovery.k8s.io/v1, kind: EndpointSlice, metadata: {name: e, namespace: x, labels: {kubernetes.io/service-name: payments}}}`, skipRules{}, ""},
		{"configmap with phase", schema.GroupResource{Resource: "configmaps"}, `{apiVersion: v1, kind: ConfigMap, metadata: {name: c}, status: {phase: Failed}}`, skipRules{}, ""},
	}
	for _, c := range cases {
		got := skipRuleReason(c.gr, obj(t, c.doc), c.rules)
		if (c.skip == "") != (got == "") || !strings.Contains(got, c.skip) {
			t.Errorf("%s: reason %q, want one with %q", c.name, got, c.skip)
		}
	}
}
