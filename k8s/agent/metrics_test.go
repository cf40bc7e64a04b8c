package agent

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/k8s/kube"
	"github.com/cairn-backup/cairn/k8s/metrics"
	"github.com/cairn-backup/cairn/k8s/volapi"
	"github.com/cairn-backup/cairn/tests/cluster"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// An agent serving /metrics on 127.0.0.1 counts the volume backups it
// finishes: one completed (its bytes read and added, its duration in the
// histogram) and one failed (no pod directory).
func TestAgentMetrics(t *testing.T) {
	c := cluster.NeedShared(t)
	cl, err := kube.Connect(kube.ClientOptions{Kubeconfig: c.Kubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := volapi.Install(ctx, cl.Dynamic, nil); err != nil {
		t.Fatal(err)
	}
	ns := fmt.Sprintf("cairn-metrics-%d", time.Now().UnixNano()%1e6)
	nsRes := cl.Dynamic.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"})
	if _, err := nsRes.Create(ctx, &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nsRes.Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	r := newRepo(t)
	root := t.TempDir()
	dir := filepath.Join(root, "pods", "uid-m", "volumes", "kubernetes.io~empty-dir", "v")
	os.MkdirAll(dir, 0o755)
	content := strings.Repeat("metrics!", 4096)
	os.WriteFile(filepath.Join(dir, "f"), []byte(content), 0o644)
	items := cl.Dynamic.Resource(volapi.VolumeBackupResource).Namespace(ns)
	create(t, items, ns, "uid-m", r.Config().ID)
	create(t, items, ns, "uid-missing", r.Config().ID)

	m := metrics.NewAgent()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { m.Serve(runCtx, ln) })
	ag, err := New(Config{Dyn: cl.Dynamic, Namespace: ns, Node: "node-x", KubeletRoot: root, Repo: r,
		ID: "node-x/metrics/1", Heartbeat: 200 * time.Millisecond, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	wg.Go(func() { ag.Run(runCtx) })
	defer func() { stop(); wg.Wait() }()

	url := "http://" + ln.Addr().String() + "/metrics"
	var text string
	for deadline := time.Now().Add(time.Minute); ; {
		text = get(t, url)
		if strings.Contains(text, `cairn_volume_backups_total{result="completed"} 1`+"\n") &&
			strings.Contains(text, `cairn_volume_backups_total{result="failed"} 1`+"\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("counters did not move:\n%s", text)
		}
		time.Sleep(100 * time.Millisecond)
	}
	vb := get1(t, items, "uid-m")
	for _, want := range []string{
		fmt.Sprintf(`cairn_volume_bytes_read_total{operation="backup"} %d`, len(content)),
		fmt.Sprintf(`cairn_volume_bytes_written_total{operation="backup"} %d`, vb.Status.BytesAdded),
		`cairn_volume_duration_seconds_count{operation="backup",result="completed"} 1`,
		`cairn_volume_duration_seconds_bucket{operation="backup",result="completed",le="+Inf"} 1`,
		`cairn_volume_duration_seconds_count{operation="backup",result="failed"} 1`,
		`cairn_volume_restores_total{result="completed"} 0`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("no %q in\n%s", want, text)
		}
	}
	if vb.Status.BytesAdded <= 0 {
		t.Errorf("nothing added: %+v", vb.Status)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != metrics.ContentType {
		t.Fatalf("GET %s: %d %q %v", url, resp.StatusCode, resp.Header.Get("Content-Type"), err)
	}
	return string(b)
}

func get1(t *testing.T, items interface {
	List(context.Context, metav1.ListOptions) (*unstructured.UnstructuredList, error)
}, uid string) *volapi.VolumeBackup {
	t.Helper()
	lst, err := items.List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range lst.Items {
		vb, _ := volapi.VolumeBackupFrom(&lst.Items[i])
		if vb.Spec.Pod.UID == uid {
			return vb
		}
	}
	t.Fatalf("no item for %s", uid)
	return nil
}
