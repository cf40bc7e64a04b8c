package install

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// Render writes objects as kubectl prints them: "yaml" is a stream of
// documents separated by "---" lines, "json" one v1 List.
func Render(objs []*unstructured.Unstructured, format string) ([]byte, error) {
	switch format {
	case "yaml":
		var buf bytes.Buffer
		for _, o := range objs {
			y, err := yaml.Marshal(o.Object)
			if err != nil {
				return nil, fmt.Errorf("render %s: %w", Describe(o), err)
			}
			buf.WriteString("---\n")
			buf.Write(y)
		}
		return buf.Bytes(), nil
	case "json":
		items := make([]any, len(objs))
		for i, o := range objs {
			items[i] = o.Object
		}
		out, err := json.MarshalIndent(map[string]any{"apiVersion": "v1", "kind": "List", "items": items}, "", "  ")
		return append(out, '\n'), err
	}
	return nil, fmt.Errorf("%w: unknown output format %q: use yaml or json", ErrOptions, format)
}

// ParseCredentials reads object-store credentials from a file in either
// of the forms people keep them in: an AWS shared credentials file (INI
// sections; profile picks one, default "default") or environment lines
// (AWS_ACCESS_KEY_ID=…, "export" allowed). It returns them by S3EnvKeys
// name; a key ID and a secret are required.
func ParseCredentials(raw []byte, profile string) (map[string]string, error) {
	if profile == "" {
		profile = "default"
	}
	names := map[string]string{
		"aws_access_key_id": "AWS_ACCESS_KEY_ID", "aws_secret_access_key": "AWS_SECRET_ACCESS_KEY",
		"aws_session_token": "AWS_SESSION_TOKEN", "region": "AWS_REGION", "aws_region": "AWS_REGION",
		"aws_default_region": "AWS_REGION",
	}
	out := map[string]string{}
	section, sawSections, sawProfile := "", false, false
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line[1:len(line)-1]), "profile "))
			sawSections = true
			sawProfile = sawProfile || section == profile
			continue
		}
		if sawSections && section != profile {
			continue
		}
		key, value, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		if !ok {
			return nil, fmt.Errorf("credentials line %d: want key = value", n)
		}
		name, known := names[strings.ToLower(strings.TrimSpace(key))]
		if !known {
			continue // other settings of the AWS files (output, …)
		}
		out[name] = strings.Trim(strings.TrimSpace(value), `"'`)
	}
	if sawSections && !sawProfile {
		return nil, fmt.Errorf("credentials file has no [%s] section", profile)
	}
	if out["AWS_ACCESS_KEY_ID"] == "" || out["AWS_SECRET_ACCESS_KEY"] == "" {
		return nil, fmt.Errorf("credentials file lacks aws_access_key_id or aws_secret_access_key")
	}
	return out, nil
}
