package volumes

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Workload names what owns a pod, as "<Kind>/<name>": its controller,
// with a Deployment's ReplicaSet resolved to the Deployment (through the
// pod-template-hash suffix, without asking the API server), or
// "Pod/<name>" for a pod nothing controls. A replaced pod of the same
// workload has the same Workload, which lets its volumes find a parent.
func Workload(p *corev1.Pod) string {
	for _, o := range p.OwnerReferences {
		if o.Controller == nil || !*o.Controller {
			continue
		}
		if o.Kind == "ReplicaSet" && strings.HasPrefix(o.APIVersion, "apps/") {
			if h := p.Labels["pod-template-hash"]; h != "" {
				if d, ok := strings.CutSuffix(o.Name, "-"+h); ok && d != "" {
					return "Deployment/" + d
				}
			}
		}
		return o.Kind + "/" + o.Name
	}
	return "Pod/" + p.Name
}
