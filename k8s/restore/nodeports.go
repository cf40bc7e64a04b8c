package restore

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
)

// lastAppliedAnnotation holds what `kubectl apply` (client-side) was given.
const lastAppliedAnnotation = "kubectl.kubernetes.io/last-applied-configuration"

// givenNodePorts are the node ports of a backed-up Service that a user
// set (as opposed to ones the API server allocated), which a restore keeps
// so that external load balancers pointing at them keep working.
type givenNodePorts struct {
	keys        map[string]bool // "<port>/<protocol>" of service ports
	names       map[string]bool // names of service ports
	healthCheck bool            // spec.healthCheckNodePort
}

// explicitNodePorts finds the node ports a user set: those in the
// last-applied configuration of `kubectl apply`, and those owned by any
// field manager. The API server allocates a node port after the field
// managers have been computed, so an allocated port is owned by no one
// (checked against the real API server: a create with one given and one
// left-out node port records f:nodePort only for the given one).
func explicitNodePorts(obj *unstructured.Unstructured) givenNodePorts {
	g := givenNodePorts{keys: map[string]bool{}, names: map[string]bool{}}
	if la := obj.GetAnnotations()[lastAppliedAnnotation]; la != "" {
		var applied map[string]any
		if json.Unmarshal([]byte(la), &applied) == nil {
			if n, _ := nestedNumber(applied, "spec", "healthCheckNodePort"); n != 0 {
				g.healthCheck = true
			}
			ports, _, _ := unstructured.NestedSlice(applied, "spec", "ports")
			for _, p := range ports {
				pm, ok := p.(map[string]any)
				if n, _ := nestedNumber(pm, "nodePort"); !ok || n == 0 {
					continue
				}
				if name, _ := pm["name"].(string); name != "" {
					g.names[name] = true
				}
				if k := servicePortKey(pm); k != "" {
					g.keys[k] = true
				}
			}
		}
	}
	for _, e := range obj.GetManagedFields() {
		if e.FieldsV1 == nil {
			continue
		}
		var fields map[string]any
		if json.Unmarshal(e.FieldsV1.GetRawBytes(), &fields) != nil {
			continue
		}
		if _, ok, _ := unstructured.NestedFieldNoCopy(fields, "f:spec", "f:healthCheckNodePort"); ok {
			g.healthCheck = true
		}
		ports, _, _ := unstructured.NestedMap(fields, "f:spec", "f:ports")
		for key, owned := range ports {
			om, _ := owned.(map[string]any)
			if _, ok := om["f:nodePort"]; !ok || !strings.HasPrefix(key, "k:") {
				continue
			}
			var id map[string]any // k:{"port":80,"protocol":"TCP"}
			if json.Unmarshal([]byte(strings.TrimPrefix(key, "k:")), &id) == nil {
				if k := servicePortKey(id); k != "" {
					g.keys[k] = true
				}
			}
		}
	}
	return g
}

// has reports whether the service port's node port was set by a user.
func (g givenNodePorts) has(port map[string]any) bool {
	if name, _ := port["name"].(string); name != "" && g.names[name] {
		return true
	}
	k := servicePortKey(port)
	return k != "" && g.keys[k]
}

// servicePortKey identifies a service port as the API does (port and
// protocol); "" without a port number.
func servicePortKey(port map[string]any) string {
	n, ok := nestedNumber(port, "port")
	if !ok || n == 0 {
		return ""
	}
	return strconv.FormatInt(n, 10) + "/" + protocolOf(port)
}

// nestedNumber reads an integer that may have been decoded from YAML
// (int64) or JSON (float64).
func nestedNumber(m map[string]any, fields ...string) (int64, bool) {
	v, ok, _ := unstructured.NestedFieldNoCopy(m, fields...)
	if !ok {
		return 0, false
	}
	switch n := v.(type) {
	case int64:
		return n, true
	case int:
		return int64(n), true
	case float64:
		return int64(n), true
	case string: // a sloppy last-applied configuration
		i, err := strconv.ParseInt(n, 10, 64)
		return i, err == nil
	}
	return 0, false
}

// portTaken finds the node port in the API server's refusal: "Invalid
// value: 30111: provided port is already allocated" for a service port,
// "failed to allocate requested HealthCheck NodePort 30111: provided port
// is already allocated" (an internal error) for the health check port.
var portTaken = regexp.MustCompile(`(\d+): provided port is already allocated`)

// takenNodePorts returns the node ports a Service's create was refused
// for, or nil when the error is about something else.
func takenNodePorts(err error) []int64 {
	if err == nil || !(apierrors.IsInvalid(err) || apierrors.IsInternalError(err)) {
		return nil
	}
	var ports []int64
	for _, m := range portTaken.FindAllStringSubmatch(apiErrorText(err), -1) {
		if n, err := strconv.ParseInt(m[1], 10, 64); err == nil {
			ports = append(ports, n)
		}
	}
	return ports
}

// dropNodePorts removes the given node ports from a Service body, so that
// the cluster allocates others; it reports whether it removed any.
func dropNodePorts(body *unstructured.Unstructured, taken []int64) bool {
	is := func(v any) bool {
		n, ok := nestedNumber(map[string]any{"v": v}, "v")
		for _, t := range taken {
			if ok && n == t {
				return true
			}
		}
		return false
	}
	dropped := false
	if v, ok, _ := unstructured.NestedFieldNoCopy(body.Object, "spec", "healthCheckNodePort"); ok && is(v) {
		unstructured.RemoveNestedField(body.Object, "spec", "healthCheckNodePort")
		dropped = true
	}
	ports, _, _ := unstructured.NestedFieldNoCopy(body.Object, "spec", "ports")
	list, _ := ports.([]any)
	for _, p := range list {
		if pm, ok := p.(map[string]any); ok && is(pm["nodePort"]) {
			delete(pm, "nodePort")
			dropped = true
		}
	}
	return dropped
}

// nodePortHolders names the services of the target cluster that hold the
// ports ("ns/name" by port); best effort: without the right to list
// services it is empty.
func (rs *restorer) nodePortHolders(ctx context.Context, ports []int64) map[int64]string {
	holders := map[int64]string{}
	list, err := rs.dyn.Resource(grService.WithVersion("v1")).List(ctx, metav1.ListOptions{})
	if err != nil {
		return holders
	}
	want := map[int64]bool{}
	for _, p := range ports {
		want[p] = true
	}
	for i := range list.Items {
		svc := &list.Items[i]
		name := svc.GetNamespace() + "/" + svc.GetName()
		if n, ok := nestedNumber(svc.Object, "spec", "healthCheckNodePort"); ok && want[n] {
			holders[n] = name
		}
		sp, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
		for _, p := range sp {
			pm, _ := p.(map[string]any)
			if n, ok := nestedNumber(pm, "nodePort"); ok && want[n] {
				holders[n] = name
			}
		}
	}
	return holders
}

// describeTaken is "node port 30111 (held by service shop/web)".
func describeTaken(ports []int64, holders map[int64]string) string {
	var parts []string
	for _, p := range ports {
		s := fmt.Sprintf("node port %d", p)
		if h := holders[p]; h != "" {
			s += " (held by service " + h + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

// createService handles a Service's create that the API server refused
// with err. A refusal for node ports already allocated comes before the
// check whether the Service exists: when a Service of that name exists,
// that is what err means (the caller treats it as such). Otherwise another
// Service holds a port. With --preserve-nodeports the user asked for the
// ports, so that fails, naming the ports and their holders; without it,
// the taken ports are ones a user set (the others were dropped), and the
// Service is created with ports the cluster allocates, with a warning:
// a restored, reachable Service beats a missing one, and the warning says
// which load balancer target must change.
func (rs *restorer) createService(ctx context.Context, ri dynamic.ResourceInterface, it *restoreItem, body *unstructured.Unstructured, err error) (*unstructured.Unstructured, error) {
	var dropped []int64
	var holders map[int64]string
	for range 8 { // each refusal names one port
		taken := takenNodePorts(err)
		if len(taken) == 0 {
			return nil, err
		}
		if _, gerr := ri.Get(ctx, body.GetName(), metav1.GetOptions{}); gerr == nil {
			return nil, apierrors.NewAlreadyExists(grService, body.GetName())
		} else if !apierrors.IsNotFound(gerr) {
			return nil, err
		}
		h := rs.nodePortHolders(ctx, taken)
		if rs.opts.PreserveNodePorts {
			return nil, fmt.Errorf("%s already allocated in the target cluster: free it, or restore without --preserve-nodeports to keep only the node ports set by hand", describeTaken(taken, h))
		}
		if !dropNodePorts(body, taken) {
			return nil, err
		}
		dropped = append(dropped, taken...)
		if holders == nil {
			holders = map[int64]string{}
		}
		maps.Copy(holders, h)
		var created *unstructured.Unstructured
		created, err = ri.Create(ctx, body, metav1.CreateOptions{DryRun: rs.dryRun(), FieldManager: restoreFieldManager})
		if err == nil {
			note := describeTaken(dropped, holders) + " already allocated in the target cluster; the cluster allocated another"
			it.result.Reason = note
			rs.warn("%s %s: %s", it.result.Resource, itemName(it.result), note)
			return created, nil
		}
	}
	return nil, err
}
