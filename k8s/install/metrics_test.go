package install

import (
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// A metrics port reaches the agent's arguments, a container port named
// metrics and the prometheus.io annotations of its pods; 0 leaves all out.
func TestObjectsMetricsPort(t *testing.T) {
	for _, port := range []int32{0, 9100} {
		o := s3Options()
		o.MetricsPort = port
		objs, err := Objects(o)
		if err != nil {
			t.Fatal(err)
		}
		ds := find(t, objs, "DaemonSet", AgentName)
		c, _, _ := unstructured.NestedSlice(ds.Object, "spec", "template", "spec", "containers")
		ctr := c[0].(map[string]any)
		args, _, _ := unstructured.NestedStringSlice(ctr, "args")
		ports, _, _ := unstructured.NestedSlice(ctr, "ports")
		ann, _, _ := unstructured.NestedStringMap(ds.Object, "spec", "template", "metadata", "annotations")
		hasArg := slices.Contains(args, "--metrics-address=:9100")
		if port == 0 {
			if hasArg || len(ports) != 0 || len(ann) != 0 {
				t.Errorf("port 0: args %v, ports %v, annotations %v", args, ports, ann)
			}
			continue
		}
		if !hasArg {
			t.Errorf("args %v", args)
		}
		if len(ports) != 1 || ports[0].(map[string]any)["name"] != "metrics" || ports[0].(map[string]any)["containerPort"] != int64(9100) {
			t.Errorf("ports %v", ports)
		}
		if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != "9100" || ann["prometheus.io/path"] != "/metrics" {
			t.Errorf("annotations %v", ann)
		}
	}
}
