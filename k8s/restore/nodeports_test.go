package restore

import (
	"errors"
	"reflect"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func TestTakenNodePorts(t *testing.T) {
	invalid := apierrors.NewInvalid(schema.GroupKind{Kind: "Service"}, "web", field.ErrorList{
		field.Invalid(field.NewPath("spec", "ports").Index(0).Child("nodePort"), 30111, "provided port is already allocated"),
	})
	for _, tc := range []struct {
		name string
		err  error
		want []int64
	}{
		{"service port", invalid, []int64{30111}},
		{"health check port", apierrors.NewInternalError(errors.New("failed to allocate requested HealthCheck NodePort 30301: provided port is already allocated")), []int64{30301}},
		{"other invalid", apierrors.NewInvalid(schema.GroupKind{Kind: "Service"}, "web", field.ErrorList{field.Required(field.NewPath("spec", "ports").Index(0).Child("name"), "")}), nil},
		{"not an API error", errors.New("30111: provided port is already allocated"), nil},
		{"exists", apierrors.NewAlreadyExists(grService, "web"), nil},
		{"nil", nil, nil},
	} {
		if got := takenNodePorts(tc.err); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestDropNodePorts(t *testing.T) {
	in := obj(t, `{spec: {healthCheckNodePort: 30301, ports: [{port: 80, nodePort: 30111}, {port: 81, nodePort: 30112}]}}`)
	if dropNodePorts(in, []int64{30999}) {
		t.Error("dropped a port not asked for")
	}
	if !dropNodePorts(in, []int64{30111, 30301}) {
		t.Error("dropped nothing")
	}
	sameObj(t, "dropped", in, obj(t, `{spec: {ports: [{port: 80}, {port: 81, nodePort: 30112}]}}`))
	if got := describeTaken([]int64{30111, 30301}, map[int64]string{30111: "shop/web"}); got != "node port 30111 (held by service shop/web), node port 30301" {
		t.Errorf("describeTaken: %q", got)
	}
}
