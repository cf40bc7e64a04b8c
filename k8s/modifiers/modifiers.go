// Package modifiers reads Velero's resource-modifier files (version v1)
// and applies their rules to objects on their way into a cluster: each
// rule has conditions (groupResource glob, namespaces, resourceNameRegex,
// labelSelector, matches) and one kind of patch: RFC 6902 JSON patches,
// RFC 7386 merge patches or strategic merge patches. Files Velero users
// keep (bare, or as the ConfigMap Velero reads them from) are accepted
// unchanged. Pure logic: no cluster.
package modifiers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// ErrInvalid marks a resource-modifier file that cannot be used.
var ErrInvalid = errors.New("invalid resource modifiers")

// maxFileSize bounds what Load reads: rule files are small.
const maxFileSize = 4 << 20

// Rules are the parsed rules of one file, in file order.
type Rules struct {
	rules []*rule
}

// Len is the number of rules; 0 for nil Rules.
func (r *Rules) Len() int {
	if r == nil {
		return 0
	}
	return len(r.rules)
}

// Describe names rule i for messages: its index and groupResource.
func (r *Rules) Describe(i int) string {
	return fmt.Sprintf("rule %d (%s)", i, r.rules[i].groupResource)
}

type patchKind int

const (
	jsonPatches patchKind = iota
	mergePatches
	strategicPatches
)

func (k patchKind) String() string {
	return [...]string{"patches", "mergePatches", "strategicPatches"}[k]
}

type rule struct {
	groupResource string
	gr            *regexp.Regexp
	namespaces    []*regexp.Regexp // none: every namespace
	name          *regexp.Regexp   // nil: every name
	selector      labels.Selector  // nil: every object
	matches       jsonpatch.Patch  // test operations; all must pass

	kind patchKind
	ops  []jsonpatch.Patch // jsonPatches: one operation each
	docs [][]byte          // mergePatches, strategicPatches: JSON objects
}

// The file's shape. Unknown fields are errors, as in Velero (a typo
// would otherwise widen a rule silently).
type fileJSON struct {
	Version               string            `json:"version"`
	ResourceModifierRules []json.RawMessage `json:"resourceModifierRules"`
}

type ruleJSON struct {
	Conditions       json.RawMessage `json:"conditions"`
	Patches          []jsonPatchJSON `json:"patches"`
	MergePatches     []patchDataJSON `json:"mergePatches"`
	StrategicPatches []patchDataJSON `json:"strategicPatches"`
}

type conditionsJSON struct {
	GroupResource     string                `json:"groupResource"`
	ResourceNameRegex string                `json:"resourceNameRegex"`
	Namespaces        []string              `json:"namespaces"`
	LabelSelector     *metav1.LabelSelector `json:"labelSelector"`
	Matches           []matchJSON           `json:"matches"`
}

type matchJSON struct {
	Path  string          `json:"path"`
	Value json.RawMessage `json:"value"`
}

type jsonPatchJSON struct {
	Operation string          `json:"operation"`
	From      string          `json:"from"`
	Path      string          `json:"path"`
	Value     json.RawMessage `json:"value"`
}

type patchDataJSON struct {
	PatchData json.RawMessage `json:"patchData"`
}

// Load reads and parses a rule file.
func Load(path string) (*Rules, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err // names the file
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("%s: %w: larger than %d bytes", path, ErrInvalid, maxFileSize)
	}
	r, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Parse reads a rule file: YAML or JSON, the rules themselves or a
// ConfigMap manifest holding them under its only data key.
func Parse(data []byte) (*Rules, error) {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, invalid("%s", oneLine(err))
	}
	var top map[string]any
	if err := json.Unmarshal(js, &top); err != nil || top == nil {
		return nil, invalid("want a mapping with version and resourceModifierRules")
	}
	if top["kind"] == "ConfigMap" {
		inner, err := configMapRules(top)
		if err != nil {
			return nil, err
		}
		if js, err = yaml.YAMLToJSONStrict([]byte(inner)); err != nil {
			return nil, invalid("configmap data: %s", oneLine(err))
		}
	}
	var f fileJSON
	if err := strictDecode(js, &f); err != nil {
		return nil, invalid("%s", err)
	}
	if !strings.EqualFold(f.Version, "v1") {
		return nil, invalid("version %q is not supported: want v1", f.Version)
	}
	if len(f.ResourceModifierRules) == 0 {
		return nil, invalid("resourceModifierRules is empty")
	}
	rs := &Rules{}
	for i, raw := range f.ResourceModifierRules {
		r, err := parseRule(raw)
		if err != nil {
			return nil, invalid("resourceModifierRules[%d]: %s", i, err)
		}
		rs.rules = append(rs.rules, r)
	}
	return rs, nil
}

// configMapRules returns the rule file a ConfigMap holds: Velero reads
// the value of its one data key.
func configMapRules(cm map[string]any) (string, error) {
	data, _ := cm["data"].(map[string]any)
	if len(data) != 1 {
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		return "", invalid("a ConfigMap of resource modifiers needs exactly one data key, this one has %d %v", len(data), keys)
	}
	for k, v := range data {
		s, ok := v.(string)
		if !ok {
			return "", invalid("configmap data key %q is not a string", k)
		}
		return s, nil
	}
	return "", nil
}

// strictDecode decodes JSON refusing unknown fields, with errors that
// name the field rather than Go types.
func strictDecode(js []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(js))
	d.DisallowUnknownFields()
	err := d.Decode(v)
	var te *json.UnmarshalTypeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &te):
		return fmt.Errorf("%s: want %s, not a JSON %s", te.Field, jsonTypeName(te.Type.Kind().String()), te.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.TrimPrefix(err.Error(), "json: unknown field ")
		if name == `"groupKind"` {
			return fmt.Errorf("unknown field %s: Velero renamed it groupResource", name)
		}
		return fmt.Errorf("unknown field %s", name)
	}
	return errors.New(oneLine(err))
}

func jsonTypeName(goKind string) string {
	switch goKind {
	case "slice":
		return "a list"
	case "struct", "map", "ptr":
		return "a mapping"
	}
	return "a " + goKind
}

func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

func parseRule(raw json.RawMessage) (*rule, error) {
	var rj ruleJSON
	if err := strictDecode(raw, &rj); err != nil {
		return nil, err
	}
	if len(rj.Conditions) == 0 || string(rj.Conditions) == "null" {
		return nil, errors.New("conditions: required (with groupResource at least)")
	}
	var cj conditionsJSON
	if err := strictDecode(rj.Conditions, &cj); err != nil {
		return nil, fmt.Errorf("conditions: %w", err)
	}
	r, err := parseConditions(&cj)
	if err != nil {
		return nil, fmt.Errorf("conditions.%w", err)
	}
	kinds := 0
	for _, n := range []int{len(rj.Patches), len(rj.MergePatches), len(rj.StrategicPatches)} {
		if n > 0 {
			kinds++
		}
	}
	switch {
	case kinds == 0:
		return nil, errors.New("patches: the rule has no patches, mergePatches or strategicPatches")
	case kinds > 1:
		return nil, errors.New("patches: only one of patches, mergePatches and strategicPatches may be given per rule")
	case len(rj.Patches) > 0:
		r.kind = jsonPatches
		for i, p := range rj.Patches {
			op, err := buildOp(p)
			if err != nil {
				return nil, fmt.Errorf("patches[%d].%w", i, err)
			}
			r.ops = append(r.ops, op)
		}
	default:
		r.kind, rj.Patches = mergePatches, nil
		list := rj.MergePatches
		if len(rj.StrategicPatches) > 0 {
			r.kind, list = strategicPatches, rj.StrategicPatches
		}
		for i, p := range list {
			doc, err := patchData(p.PatchData)
			if err != nil {
				return nil, fmt.Errorf("%s[%d].patchData: %w", r.kind, i, err)
			}
			r.docs = append(r.docs, doc)
		}
	}
	return r, nil
}

func parseConditions(c *conditionsJSON) (*rule, error) {
	r := &rule{groupResource: c.GroupResource}
	if c.GroupResource == "" {
		return nil, errors.New("groupResource: required (for example deployments.apps, pods, *.apps or *.*)")
	}
	var err error
	if r.gr, err = globRegexp(c.GroupResource, true); err != nil {
		return nil, fmt.Errorf("groupResource %q: %w", c.GroupResource, err)
	}
	for i, ns := range c.Namespaces {
		re, err := globRegexp(ns, false)
		if err != nil {
			return nil, fmt.Errorf("namespaces[%d] %q: %w", i, ns, err)
		}
		r.namespaces = append(r.namespaces, re)
	}
	if c.ResourceNameRegex != "" {
		if r.name, err = regexp.Compile(c.ResourceNameRegex); err != nil {
			return nil, fmt.Errorf("resourceNameRegex: %s", oneLine(err))
		}
	}
	if c.LabelSelector != nil {
		if r.selector, err = metav1.LabelSelectorAsSelector(c.LabelSelector); err != nil {
			return nil, fmt.Errorf("labelSelector: %s", oneLine(err))
		}
	}
	for i, m := range c.Matches {
		if m.Path == "" {
			return nil, fmt.Errorf("matches[%d].path: required", i)
		}
		op, err := buildOp(jsonPatchJSON{Operation: "test", Path: m.Path, Value: m.Value})
		if err != nil {
			return nil, fmt.Errorf("matches[%d].%w", i, err)
		}
		r.matches = append(r.matches, op...)
	}
	return r, nil
}

var jsonOps = map[string]bool{"add": true, "remove": true, "replace": true, "move": true, "copy": true, "test": true}

// buildOp turns one Velero patch entry into an RFC 6902 operation.
func buildOp(p jsonPatchJSON) (jsonpatch.Patch, error) {
	op := strings.ToLower(p.Operation)
	switch {
	case p.Operation == "":
		return nil, errors.New("operation: required (add, remove, replace, move, copy or test)")
	case !jsonOps[op]:
		return nil, fmt.Errorf("operation: %q is not add, remove, replace, move, copy or test", p.Operation)
	}
	if err := checkPointer(p.Path); err != nil {
		return nil, fmt.Errorf("path: %w", err)
	}
	out := map[string]any{"op": op, "path": p.Path}
	if op == "move" || op == "copy" {
		if err := checkPointer(p.From); err != nil {
			return nil, fmt.Errorf("from: %w", err)
		}
		out["from"] = p.From
	}
	v, err := patchValue(p.Value)
	if err != nil {
		return nil, fmt.Errorf("value: %w", err)
	}
	out["value"] = v
	js, err := json.Marshal([]any{out})
	if err != nil {
		return nil, err
	}
	return jsonpatch.DecodePatch(js)
}

// checkPointer checks an RFC 6901 JSON pointer to a member (not the root).
func checkPointer(p string) error {
	switch {
	case p == "":
		return errors.New("required (a JSON pointer such as /spec/replicas)")
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("%q is not a JSON pointer: it must start with /", p)
	}
	for i := 0; i < len(p); i++ {
		if p[i] == '~' && (i+1 == len(p) || (p[i+1] != '0' && p[i+1] != '1')) {
			return fmt.Errorf("%q: ~ must be followed by 0 or 1", p)
		}
	}
	return nil
}

// patchValue reads an operation's value as Velero does: its value is a
// string whose text is taken as JSON when it looks like a number, a
// boolean, null, an object or an array, and as a string otherwise; a
// string wrapped in double quotes is the string inside. Values that are
// not strings in the YAML (Velero refuses them) are taken as they are.
func patchValue(raw json.RawMessage) (json.RawMessage, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return json.RawMessage(`""`), nil // Velero: a missing value is ""
	}
	var s string
	if raw[0] != '"' {
		return raw, nil
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, err
	}
	str := func(s string) (json.RawMessage, error) { return json.Marshal(s) }
	switch {
	case s == "":
		return str("")
	case len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"':
		return str(s[1 : len(s)-1])
	case s == "null":
		return json.RawMessage("null"), nil
	case strings.EqualFold(s, "true"):
		return json.RawMessage("true"), nil
	case strings.EqualFold(s, "false"):
		return json.RawMessage("false"), nil
	case s[0] == '{' || s[0] == '[':
		if !json.Valid([]byte(s)) {
			return nil, fmt.Errorf("starts with %c but is not valid JSON (quote it as \"'...'\" to mean the string)", s[0])
		}
		return json.RawMessage(s), nil
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil && json.Valid([]byte(s)) {
		return json.RawMessage(s), nil
	}
	return str(s)
}

// patchData reads a merge or strategic patch body: a string of YAML or
// JSON (as Velero takes it) or a mapping written in place.
func patchData(raw json.RawMessage) ([]byte, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, errors.New("required")
	}
	js := []byte(raw)
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		var err error
		if js, err = yaml.YAMLToJSONStrict([]byte(s)); err != nil {
			return nil, errors.New(oneLine(err))
		}
	}
	var m map[string]any
	if err := json.Unmarshal(js, &m); err != nil || m == nil {
		return nil, errors.New("want a mapping (the fields to change)")
	}
	return js, nil
}
