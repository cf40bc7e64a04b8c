// Package deploy holds what is installed into a cluster for cairn's node
// agent, as YAML a user can read and kubectl can apply; the binary embeds
// the same files, so `cairn cluster install-crds` and the repository never
// disagree.
package deploy

import "embed"

// CRDs holds crds/*.yaml: one CustomResourceDefinition per file.
//
//go:embed crds/*.yaml
var CRDs embed.FS

// ImageRepository is where cairn's container image is published; its tag
// is the binary's version (`make image` builds it, the Dockerfile too).
const ImageRepository = "ghcr.io/cairn-backup/cairn"
