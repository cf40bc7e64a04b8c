package restore

import (
	"cmp"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/k8s/layout"
)

// TestRestoreBenchConfigMaps restores 5,000 ConfigMaps in 50 namespaces
// and reports the rate. It runs only with CAIRN_BENCH_K8S=1
// (CAIRN_BENCH_WORKERS sets the workers, default 8).
func TestRestoreBenchConfigMaps(t *testing.T) {
	if os.Getenv("CAIRN_BENCH_K8S") != "1" {
		t.Skip("set CAIRN_BENCH_K8S=1 to run the restore benchmark")
	}
	cl := rtConnect(t)
	workers, _ := strconv.Atoi(os.Getenv("CAIRN_BENCH_WORKERS"))
	const namespaces, perNS = 50, 100
	files := map[string][]byte{}
	var names []string
	for n := range namespaces {
		ns := fmt.Sprintf("rt-bench-%02d", n)
		names = append(names, ns)
		p, buf := rtManifest(t, grNamespace, obj(t, fmt.Sprintf(`{apiVersion: v1, kind: Namespace, metadata: {name: %s, uid: u%d}}`, ns, n)))
		files[p] = buf
		for i := range perNS {
			o := obj(t, fmt.Sprintf(`{apiVersion: v1, kind: ConfigMap, metadata: {name: cm-%03d, namespace: %s, uid: x%d-%d, resourceVersion: "%d", labels: {app: bench}},
				data: {index: "%d", config.yaml: "key: value\nother: %d\nlist: [a, b, c]\n"}}`, i, ns, n, i, i+1, i, i))
			p, buf := rtManifest(t, grConfigMap, o)
			files[p] = buf
		}
	}
	rtCleanup(t, cl, names...)
	r := rtRepo(t)
	sn := rtWriteBackup(t, r, "bench", files)
	start := time.Now()
	res := rtRestore(t, r, sn, cl, RestoreOptions{Workers: workers})
	took := time.Since(start)
	if res.Phase != layout.PhaseCompleted || res.Total(ActionCreated) != namespaces*(perNS+1) {
		t.Fatalf("phase %s, %d created", res.Phase, res.Total(ActionCreated))
	}
	n := res.Total(ActionCreated)
	t.Logf("restored %d objects (%d ConfigMaps in %d namespaces) in %s: %.0f objects/s (workers %d)",
		n, namespaces*perNS, namespaces, took.Round(time.Millisecond), float64(n)/took.Seconds(), cmp.Or(workers, 8))
}
