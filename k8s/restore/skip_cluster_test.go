package restore

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var gvrJob = schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"}

// skipBackupFiles is a backup holding a completed Job, a succeeded pod of
// it, a bootstrap-token Secret in namespace ns and the live automanaged
// APIService v1.apps.
func skipBackupFiles(t *testing.T, ns string) map[string][]byte {
	files := rtLiveFiles(t, rtConnect(t), nil, map[schema.GroupResource][]string{grAPIService: {"v1.apps"}})
	for _, doc := range []struct {
		gr  schema.GroupResource
		yml string
	}{
		{grJob, `
apiVersion: batch/v1
kind: Job
metadata: {name: migrate-db, namespace: ` + ns + `}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers: [{name: m, image: "registry.invalid/migrate:1"}]
status:
  succeeded: 1
  startTime: "2026-01-01T00:00:00Z"
  completionTime: "2026-01-01T00:01:00Z"
  conditions: [{type: Complete, status: "True"}]
`},
		{grPod, `
apiVersion: v1
kind: Pod
metadata: {name: done, namespace: ` + ns + `}
spec:
  restartPolicy: Never
  containers: [{name: m, image: "registry.invalid/once:1"}]
status: {phase: Succeeded}
`},
		{grSecret, `
apiVersion: v1
kind: Secret
metadata: {name: bootstrap-token-abcdef, namespace: ` + ns + `}
type: bootstrap.kubernetes.io/token
stringData: {token-id: abcdef, token-secret: 0123456789abcdef, usage-bootstrap-authentication: "true"}
`},
	} {
		p, buf := rtManifest(t, doc.gr, obj(t, doc.yml))
		files[p] = buf
	}
	return files
}

// TestRestoreSkipsFinishedAndClusterMade: a completed Job, a finished pod
// and a bootstrap token are skipped with their reasons and nothing runs;
// the automanaged APIService is never restored; the namespace that held
// only skipped objects is not made; the flags bring the others back, and
// the restored Job runs.
func TestRestoreSkipsFinishedAndClusterMade(t *testing.T) {
	cl := rtConnect(t)
	ctx := context.Background()
	rtCleanup(t, cl, "rt-fin-a", "rt-fin-b")
	r := rtRepo(t)
	sn := rtWriteBackup(t, r, "rt-fin", skipBackupFiles(t, "rt-fin"))
	all := true

	res := rtRestore(t, r, sn, cl, RestoreOptions{IncludeClusterResources: &all, NamespaceMappings: map[string]string{"rt-fin": "rt-fin-a"}})
	items := rtItems(res)
	for key, why := range map[string]string{
		"jobs.batch rt-fin-a/migrate-db":             "job finished",
		"pods rt-fin-a/done":                         "pod finished",
		"secrets rt-fin-a/bootstrap-token-abcdef":    "bootstrap token",
		"apiservices.apiregistration.k8s.io v1.apps": "API server",
	} {
		if it := items[key]; it.Action != ActionSkipped || !strings.Contains(it.Reason, why) {
			t.Errorf("%s: %+v, want skipped for %q", key, it, why)
		}
	}
	if it := items["jobs.batch rt-fin-a/migrate-db"]; it.SourceNamespace != "rt-fin" {
		t.Errorf("job: source namespace %q", it.SourceNamespace)
	}
	if rtGet(t, cl, gvrJob, "rt-fin-a", "migrate-db") != nil || rtGet(t, cl, gvrSecret, "rt-fin-a", "bootstrap-token-abcdef") != nil {
		t.Error("a skipped object was restored")
	}
	// Nothing in rt-fin is restored: its namespace is not made either.
	if it, ok := items["namespaces rt-fin-a"]; ok || rtGet(t, cl, gvrNamespace, "", "rt-fin-a") != nil {
		t.Errorf("namespace rt-fin-a made for skipped objects only (%+v)", it)
	}
	time.Sleep(3 * time.Second) // time for a Job controller to start a pod
	if pods, err := cl.Dynamic.Resource(gvrPod).Namespace("rt-fin-a").List(ctx, metav1.ListOptions{}); err != nil || len(pods.Items) != 0 {
		t.Fatalf("pods after the default restore: %v (err %v)", len(pods.Items), err)
	}

	res = rtRestore(t, r, sn, cl, RestoreOptions{
		IncludeClusterResources: &all, NamespaceMappings: map[string]string{"rt-fin": "rt-fin-b"},
		IncludeFinished: true, IncludeBootstrapTokens: true,
	})
	items = rtItems(res)
	for _, key := range []string{"namespaces rt-fin-b", "jobs.batch rt-fin-b/migrate-db", "pods rt-fin-b/done", "secrets rt-fin-b/bootstrap-token-abcdef"} {
		rtWantAction(t, items, key, ActionCreated)
	}
	if it := items["apiservices.apiregistration.k8s.io v1.apps"]; it.Action != ActionSkipped {
		t.Errorf("v1.apps with the flags: %+v", it)
	}
	// The restored Job has no status, so its controller runs it: why it is
	// skipped by default.
	deadline := time.Now().Add(30 * time.Second)
	for {
		pods, err := cl.Dynamic.Resource(gvrPod).Namespace("rt-fin-b").List(ctx, metav1.ListOptions{LabelSelector: "job-name=migrate-db"})
		if err != nil {
			t.Fatal(err)
		}
		if len(pods.Items) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the restored Job started no pod")
		}
		time.Sleep(300 * time.Millisecond)
	}
}
