package modifiers

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseDocumentedExamples(t *testing.T) {
	files, _ := filepath.Glob("testdata/velero-*.yaml")
	if len(files) < 7 {
		t.Fatalf("want the 7 documented examples in testdata, found %d", len(files))
	}
	for _, f := range files {
		r, err := Load(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if r.Len() != 1 {
			t.Errorf("%s: %d rules, want 1", f, r.Len())
		}
	}
}

func TestParseJSON(t *testing.T) {
	r, err := Parse([]byte(`{"version":"V1","resourceModifierRules":[{"conditions":{"groupResource":"pods"},
		"patches":[{"operation":"Add","path":"/metadata/labels/a","value":"b"}]}]}`))
	if err != nil || r.Len() != 1 {
		t.Fatalf("Parse JSON: %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	rule := func(body string) string {
		return "version: v1\nresourceModifierRules:\n- " + strings.ReplaceAll(body, "\n", "\n  ") + "\n"
	}
	patch := "patches:\n- operation: remove\n  path: /spec/x"
	for _, tc := range []struct {
		name, in, want string
	}{
		{"not yaml", "version: [", "yaml"},
		{"not a mapping", "- a\n- b\n", "want a mapping"},
		{"version", "version: v2\nresourceModifierRules: []\n", `version "v2" is not supported`},
		{"no version", "resourceModifierRules: []\n", `version "" is not supported`},
		{"no rules", "version: v1\n", "resourceModifierRules is empty"},
		{"unknown top field", "version: v1\nrules: []\n", `unknown field "rules"`},
		{"duplicate key", "version: v1\nversion: v1\n", `key "version" already set`},
		{"no conditions", rule(patch), "resourceModifierRules[0]: conditions: required"},
		{"no groupResource", rule("conditions:\n  namespaces: [a]\n" + patch), "resourceModifierRules[0]: conditions.groupResource: required"},
		{"old groupKind", rule("conditions:\n  groupKind: pods\n" + patch), `conditions: unknown field "groupKind": Velero renamed it groupResource`},
		{"typo in rule", rule("conditions:\n  groupResource: pods\npatch:\n- {}"), `resourceModifierRules[0]: unknown field "patch"`},
		{"wrong type", rule("conditions:\n  groupResource: [pods]\n" + patch), "conditions: groupResource: want a string"},
		{"bad glob", rule("conditions:\n  groupResource: '{pods'\n" + patch), `conditions.groupResource "{pods": unclosed {`},
		{"bad namespace glob", rule("conditions:\n  groupResource: pods\n  namespaces: [ok, 'a[']\n" + patch), `conditions.namespaces[1] "a[": unclosed [`},
		{"bad regex", rule("conditions:\n  groupResource: pods\n  resourceNameRegex: '(a'\n" + patch), "conditions.resourceNameRegex: error parsing regexp"},
		{"bad selector", rule("conditions:\n  groupResource: pods\n  labelSelector:\n    matchExpressions:\n    - {key: a, operator: Near}\n" + patch), "conditions.labelSelector:"},
		{"match without path", rule("conditions:\n  groupResource: pods\n  matches:\n  - value: x\n" + patch), "conditions.matches[0].path: required"},
		{"no patches", rule("conditions:\n  groupResource: pods"), "the rule has no patches, mergePatches or strategicPatches"},
		{"two kinds", rule("conditions:\n  groupResource: pods\n" + patch + "\nmergePatches:\n- patchData: '{}'"), "only one of patches, mergePatches and strategicPatches"},
		{"bad op", rule("conditions:\n  groupResource: pods\npatches:\n- operation: rplace\n  path: /a"), `resourceModifierRules[0]: patches[0].operation: "rplace" is not add`},
		{"no op", rule("conditions:\n  groupResource: pods\npatches:\n- path: /a"), "patches[0].operation: required"},
		{"no path", rule("conditions:\n  groupResource: pods\npatches:\n- operation: remove"), "patches[0].path: required"},
		{"relative path", rule("conditions:\n  groupResource: pods\npatches:\n- operation: remove\n  path: spec/a"), `patches[0].path: "spec/a" is not a JSON pointer`},
		{"bad escape", rule("conditions:\n  groupResource: pods\npatches:\n- operation: remove\n  path: /a~2"), "~ must be followed by 0 or 1"},
		{"copy without from", rule("conditions:\n  groupResource: pods\npatches:\n- operation: copy\n  path: /a"), "patches[0].from: required"},
		{"bad json value", rule("conditions:\n  groupResource: pods\npatches:\n- operation: add\n  path: /a\n  value: '{nope'"), "patches[0].value: starts with { but is not valid JSON"},
		{"merge not mapping", rule("conditions:\n  groupResource: pods\nmergePatches:\n- patchData: '[1]'"), "mergePatches[0].patchData: want a mapping"},
		{"strategic empty", rule("conditions:\n  groupResource: pods\nstrategicPatches:\n- {}"), "strategicPatches[0].patchData: required"},
		{"second rule", "version: v1\nresourceModifierRules:\n- conditions: {groupResource: pods}\n  " + strings.ReplaceAll(patch, "\n", "\n  ") +
			"\n- conditions: {groupResource: ''}\n  " + strings.ReplaceAll(patch, "\n", "\n  ") + "\n", "resourceModifierRules[1]: conditions.groupResource: required"},
		{"configmap two keys", "apiVersion: v1\nkind: ConfigMap\ndata:\n  a: x\n  b: y\n", "needs exactly one data key, this one has 2"},
		{"configmap bad rules", "apiVersion: v1\nkind: ConfigMap\ndata:\n  a: 'version: v3'\n", `version "v3" is not supported`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			if err == nil {
				t.Fatalf("Parse accepted:\n%s", tc.in)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v is not ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q\nwant it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error has several lines: %q", err)
			}
		})
	}
}

func TestLoadErrorNamesFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(p, []byte("version: v9\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), p) || !errors.Is(err, ErrInvalid) {
		t.Errorf("Load = %v, want an ErrInvalid naming %s", err, p)
	}
	if _, err := Load(p + ".missing"); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file = %v", err)
	}
}

func TestPatchValue(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{``, `""`},
		{`null`, `""`},
		{`""`, `""`},
		{`"premium"`, `"premium"`},
		{`"1"`, `1`},
		{`"-2.5e3"`, `-2.5e3`},
		{`"01"`, `"01"`},   // not a JSON number: Velero would send invalid JSON
		{`"NaN"`, `"NaN"`}, // likewise
		{`"\"1\""`, `"1"`}, // quoted: the string inside
		{`"\"true\""`, `"true"`},
		{`"true"`, `true`},
		{`"False"`, `false`},
		{`"null"`, `null`},
		{`"{\"a\": [1]}"`, `{"a": [1]}`},
		{`"[1,2]"`, `[1,2]`},
		{`"say \"hi\""`, `"say \"hi\""`},
		{`3`, `3`}, // not a string in the YAML: as it is
		{`{"a":1}`, `{"a":1}`},
		{`false`, `false`},
	} {
		got, err := patchValue([]byte(tc.in))
		if err != nil || string(got) != tc.want {
			t.Errorf("patchValue(%s) = %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

func TestGlob(t *testing.T) {
	for _, tc := range []struct {
		glob string
		dots bool
		yes  []string
		no   []string
	}{
		{"*", true, []string{"pods", "persistentvolumeclaims"}, []string{"deployments.apps", "x.y"}},
		{"*.apps", true, []string{"deployments.apps", "statefulsets.apps"}, []string{"pods", "jobs.batch", "a.b.apps"}},
		{"*.*", true, []string{"deployments.apps", "jobs.batch"}, []string{"pods", "ingresses.networking.k8s.io"}},
		{"**", true, []string{"pods", "ingresses.networking.k8s.io"}, nil},
		{"*.networking.k8s.io", true, []string{"ingresses.networking.k8s.io"}, []string{"ingresses.k8s.io"}},
		{"{pods,services}", true, []string{"pods", "services"}, []string{"secrets"}},
		{"deploy?ents.apps", true, []string{"deployments.apps"}, []string{"deploy.ents.apps"}},
		{"[!p]*", true, []string{"secrets"}, []string{"pods"}},
		{"pods", true, []string{"pods"}, []string{"pods.apps", "xpods"}},
		{"prod-*", false, []string{"prod-a", "prod-a.b"}, []string{"dev-a"}},
		{"*", false, []string{"anything.at.all"}, nil},
		{`a\*`, false, []string{"a*"}, []string{"ab"}},
	} {
		re, err := globRegexp(tc.glob, tc.dots)
		if err != nil {
			t.Errorf("glob %q: %v", tc.glob, err)
			continue
		}
		for _, s := range tc.yes {
			if !re.MatchString(s) {
				t.Errorf("glob %q (dots %v) does not match %q", tc.glob, tc.dots, s)
			}
		}
		for _, s := range tc.no {
			if re.MatchString(s) {
				t.Errorf("glob %q (dots %v) matches %q", tc.glob, tc.dots, s)
			}
		}
	}
}
