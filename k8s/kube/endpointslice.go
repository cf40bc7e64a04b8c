package kube

// endpointSliceControllers are the values of the managed-by label of the
// EndpointSlices the cluster makes from Services and Endpoints.
var endpointSliceControllers = map[string]bool{
	"endpointslice-controller.k8s.io":          true,
	"endpointslicemirroring-controller.k8s.io": true,
}

// ClusterEndpointSlice says why an EndpointSlice is made by the cluster
// (and so neither backed up nor restored), or "" for one made by a user or
// another controller, as for a Service without a selector.
func ClusterEndpointSlice(namespace string, labels map[string]string) string {
	switch {
	case endpointSliceControllers[labels["endpointslice.kubernetes.io/managed-by"]]:
		return "endpoint slices of services are made by the cluster"
	case namespace == "default" && labels["kubernetes.io/service-name"] == "kubernetes":
		return "the API servers keep the endpoints of the kubernetes service"
	}
	return ""
}
