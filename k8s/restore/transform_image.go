package restore

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// ImageMapping replaces the registry/repository prefix From of container
// images with To; the image's name and tag or digest are kept.
type ImageMapping struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// portAfterColon matches what follows a registry host's colon: a port,
// then a slash or the end.
var portAfterColon = regexp.MustCompile(`^[0-9]+(/|$)`)

// ParseImageMappings parses "old/prefix:new/prefix" pairs. Registry ports
// are allowed on both sides ("reg:5000/team:mirror:443/team"): the pair is
// split at the colon that is not followed by a port.
func ParseImageMappings(args []string) ([]ImageMapping, error) {
	var out []ImageMapping
	for _, arg := range args {
		for _, pair := range strings.Split(arg, ",") {
			pair = strings.TrimSpace(pair)
			if pair == "" {
				continue
			}
			split := -1
			for i := 0; i < len(pair); i++ {
				if pair[i] == ':' && !portAfterColon.MatchString(pair[i+1:]) {
					if split >= 0 {
						split = -2 // ambiguous
						break
					}
					split = i
				}
			}
			if split < 0 {
				return nil, fmt.Errorf("--image-repository-mappings %q: want OLD/PREFIX:NEW/PREFIX (repository prefixes, without name or tag)", pair)
			}
			from := strings.TrimSuffix(pair[:split], "/")
			to := strings.TrimSuffix(pair[split+1:], "/")
			if from == "" || to == "" || strings.ContainsAny(from+to, "@ ") {
				return nil, fmt.Errorf("--image-repository-mappings %q: want OLD/PREFIX:NEW/PREFIX (repository prefixes, without name or tag)", pair)
			}
			out = append(out, ImageMapping{From: from, To: to})
		}
	}
	// The longest (most specific) prefix wins.
	slices.SortStableFunc(out, func(a, b ImageMapping) int { return len(b.From) - len(a.From) })
	return out, nil
}

// splitImage splits an image reference into repository and the rest (":tag",
// "@digest" or both, or "").
func splitImage(image string) (repo, rest string) {
	if i := strings.IndexByte(image, '@'); i >= 0 {
		repo, rest = image[:i], image[i:]
	} else {
		repo = image
	}
	slash := strings.LastIndexByte(repo, '/')
	if c := strings.LastIndexByte(repo, ':'); c > slash {
		repo, rest = repo[:c], repo[c:]+rest
	}
	return repo, rest
}

// normalizeRepo spells a Docker Hub repository in full ("nginx" ->
// "docker.io/library/nginx"); others are returned unchanged.
func normalizeRepo(repo string) string {
	first, _, hasSlash := strings.Cut(repo, "/")
	if hasSlash && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return repo
	}
	if !hasSlash {
		return "docker.io/library/" + repo
	}
	return "docker.io/" + repo
}

// mapImage applies the first mapping whose prefix ends at a path component
// of the image's repository, leaving at least the image's name. Docker Hub
// images also match in their full spelling.
func mapImage(image string, mappings []ImageMapping) string {
	repo, rest := splitImage(image)
	for _, m := range mappings {
		for _, r := range []string{repo, normalizeRepo(repo)} {
			if strings.HasPrefix(r, m.From+"/") {
				return m.To + r[len(m.From):] + rest
			}
		}
	}
	return image
}

// podSpecPaths are where the pod specs of workload resources are.
var podSpecPaths = map[schema.GroupResource][]string{
	grPod:                                     {"spec"},
	{Resource: "podtemplates"}:                {"template", "spec"},
	{Resource: "replicationcontrollers"}:      {"spec", "template", "spec"},
	{Group: "apps", Resource: "deployments"}:  {"spec", "template", "spec"},
	{Group: "apps", Resource: "statefulsets"}: {"spec", "template", "spec"},
	{Group: "apps", Resource: "daemonsets"}:   {"spec", "template", "spec"},
	{Group: "apps", Resource: "replicasets"}:  {"spec", "template", "spec"},
	{Group: "batch", Resource: "jobs"}:        {"spec", "template", "spec"},
	{Group: "batch", Resource: "cronjobs"}:    {"spec", "jobTemplate", "spec", "template", "spec"},
}

// mapImages rewrites the images of all containers, init containers and
// ephemeral containers in the object's pod spec.
func mapImages(obj *unstructured.Unstructured, gr schema.GroupResource, mappings []ImageMapping) {
	p, ok := podSpecPaths[gr]
	if !ok || len(mappings) == 0 {
		return
	}
	spec, _, _ := unstructured.NestedFieldNoCopy(obj.Object, p...)
	sm, ok := spec.(map[string]any)
	if !ok {
		return
	}
	for _, field := range []string{"initContainers", "containers", "ephemeralContainers"} {
		list, _ := sm[field].([]any)
		for _, c := range list {
			cm, ok := c.(map[string]any)
			if !ok {
				continue
			}
			if img, _ := cm["image"].(string); img != "" {
				cm["image"] = mapImage(img, mappings)
			}
		}
	}
}
