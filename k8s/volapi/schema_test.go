package volapi

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestSchemaMatchesTypes holds the CRD YAML and the Go types to each other:
// every JSON field of spec and status is in the schema with the matching
// type, every schema property is a Go field, required fields are never
// omitted by the Go encoding, and the printer columns point at fields.
func TestSchemaMatchesTypes(t *testing.T) {
	crds, err := CRDs()
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]reflect.Type{
		"volumebackups.cairn.io":  reflect.TypeFor[VolumeBackup](),
		"volumerestores.cairn.io": reflect.TypeFor[VolumeRestore](),
	}
	if len(crds) != len(types) {
		t.Fatalf("%d CRDs embedded, %d types", len(crds), len(types))
	}
	for _, c := range crds {
		typ, ok := types[c.Obj.GetName()]
		if !ok {
			t.Fatalf("CRD %s has no Go type", c.Obj.GetName())
		}
		if g, _, _ := unstructured.NestedString(c.Obj.Object, "spec", "group"); g != Group {
			t.Errorf("%s: group %q", c.Path, g)
		}
		if k, _, _ := unstructured.NestedString(c.Obj.Object, "spec", "names", "kind"); k != typ.Name() {
			t.Errorf("%s: kind %q, type %s", c.Path, k, typ.Name())
		}
		versions, _, _ := unstructured.NestedSlice(c.Obj.Object, "spec", "versions")
		if len(versions) != 1 {
			t.Fatalf("%s: %d versions", c.Path, len(versions))
		}
		v := versions[0].(map[string]any)
		if v["name"] != Version {
			t.Errorf("%s: version %v", c.Path, v["name"])
		}
		if _, ok, _ := unstructured.NestedMap(v, "subresources", "status"); !ok {
			t.Errorf("%s: no status subresource", c.Path)
		}
		root, _, _ := unstructured.NestedMap(v, "schema", "openAPIV3Schema")
		props, _, _ := unstructured.NestedMap(root, "properties")
		for _, part := range []string{"Spec", "Status"} {
			f, _ := typ.FieldByName(part)
			name := jsonName(f)
			sub, ok := props[name].(map[string]any)
			if !ok {
				t.Errorf("%s: no %s in schema", c.Path, name)
				continue
			}
			compare(t, c.Path+": "+name, f.Type, sub)
		}
		cols, _, _ := unstructured.NestedSlice(v, "additionalPrinterColumns")
		var names []string
		for _, col := range cols {
			m := col.(map[string]any)
			names = append(names, m["name"].(string))
			p := m["jsonPath"].(string)
			if p == ".metadata.creationTimestamp" {
				continue
			}
			if !schemaHas(root, strings.Split(strings.TrimPrefix(p, "."), ".")) {
				t.Errorf("%s: printer column %s points at %s, not in the schema", c.Path, m["name"], p)
			}
		}
		for _, want := range []string{"Phase", "Volume", "Pod", "Age"} {
			if !slices.Contains(names, want) {
				t.Errorf("%s: no printer column %s (have %v)", c.Path, want, names)
			}
		}
	}
}

var timeType, microTimeType = reflect.TypeFor[metav1.Time](), reflect.TypeFor[metav1.MicroTime]()

// compare checks one Go type against its schema node, recursively.
func compare(t *testing.T, where string, typ reflect.Type, s map[string]any) {
	t.Helper()
	if typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	want := ""
	switch {
	case typ == timeType || typ == microTimeType:
		want = "string"
		if s["format"] != "date-time" {
			t.Errorf("%s: time without format date-time", where)
		}
	case typ.Kind() == reflect.String:
		want = "string"
	case typ.Kind() == reflect.Int32 || typ.Kind() == reflect.Int64:
		want = "integer"
		if f := "int" + strings.TrimPrefix(typ.Kind().String(), "int"); s["format"] != f {
			t.Errorf("%s: format %v, Go type %s", where, s["format"], typ)
		}
	case typ.Kind() == reflect.Slice:
		want = "array"
		if items, ok := s["items"].(map[string]any); ok {
			compare(t, where+"[]", typ.Elem(), items)
		} else {
			t.Errorf("%s: array without items", where)
		}
	case typ.Kind() == reflect.Struct:
		want = "object"
		compareObject(t, where, typ, s)
	default:
		t.Errorf("%s: Go type %s has no schema mapping", where, typ)
	}
	if s["type"] != want {
		t.Errorf("%s: schema type %v, Go type %s wants %s", where, s["type"], typ, want)
	}
	if typ == reflect.TypeFor[Phase]() {
		var enum []string
		for _, e := range s["enum"].([]any) {
			enum = append(enum, e.(string))
		}
		if !slices.Equal(enum, []string{string(PhaseNew), string(PhaseInProgress), string(PhaseCompleted), string(PhaseFailed)}) {
			t.Errorf("%s: enum %v", where, enum)
		}
	}
}

func compareObject(t *testing.T, where string, typ reflect.Type, s map[string]any) {
	t.Helper()
	props, _ := s["properties"].(map[string]any)
	fields := map[string]reflect.StructField{}
	collectFields(typ, fields)
	for name, f := range fields {
		sub, ok := props[name].(map[string]any)
		if !ok {
			t.Errorf("%s.%s (Go %s.%s) is not in the schema", where, name, typ.Name(), f.Name)
			continue
		}
		compare(t, where+"."+name, f.Type, sub)
	}
	for name := range props {
		if _, ok := fields[name]; !ok {
			t.Errorf("%s.%s is in the schema but not in Go type %s", where, name, typ.Name())
		}
	}
	req, _ := s["required"].([]any)
	for _, r := range req {
		f, ok := fields[r.(string)]
		if ok && strings.Contains(f.Tag.Get("json"), "omitempty") {
			t.Errorf("%s.%s is required but the Go field omits it when empty", where, r)
		}
	}
}

// collectFields gathers the JSON fields of a struct, inlining embedded
// structs as encoding/json (and the unstructured converter) do.
func collectFields(typ reflect.Type, out map[string]reflect.StructField) {
	for f := range typ.Fields() {
		if !f.IsExported() {
			continue
		}
		if f.Anonymous && jsonName(f) == "" {
			collectFields(f.Type, out)
			continue
		}
		out[jsonName(f)] = f
	}
}

func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if name == "" && !f.Anonymous {
		return f.Name
	}
	return name
}

func schemaHas(s map[string]any, path []string) bool {
	for _, p := range path {
		props, _ := s["properties"].(map[string]any)
		next, ok := props[p].(map[string]any)
		if !ok {
			return false
		}
		s = next
	}
	return true
}
