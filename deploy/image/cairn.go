package image

import (
	"embed"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"

	"github.com/cairn-backup/cairn/deploy"
)

// rootfs holds the image's /etc/passwd and /etc/group; the Dockerfile
// copies the same files.
//
//go:embed rootfs/etc/passwd rootfs/etc/group
var rootfs embed.FS

// CairnBinary is where the image keeps cairn; it is the entrypoint.
const CairnBinary = "/usr/local/bin/cairn"

// CAFile is where Debian (and so the golang build image) keeps the CA
// bundle, and where Go's crypto/x509 looks first.
const CAFile = "/etc/ssl/certs/ca-certificates.crt"

// CairnRef is the reference of cairn's image at version.
func CairnRef(version string) string { return deploy.ImageRepository + ":" + version }

// Cairn is cairn's image, as the Dockerfile builds it: the static binary
// (built with CGO_ENABLED=0), the CA certificates for object stores and
// API servers, passwd and group naming root and nobody, and a /tmp.
// It runs as root: the node agent reads and restores every pod's files
// with their owners; pods that need less set runAsUser themselves.
func Cairn(binary, caFile, version string) (Spec, error) {
	passwd, err := rootfs.ReadFile("rootfs/etc/passwd")
	if err != nil {
		return Spec{}, err
	}
	group, err := rootfs.ReadFile("rootfs/etc/group")
	if err != nil {
		return Spec{}, err
	}
	return Spec{
		Ref: CairnRef(version),
		Files: []File{
			{Path: CairnBinary, Source: binary, Mode: 0o755},
			{Path: CAFile, Source: caFile, Mode: 0o644},
			{Path: "/etc/passwd", Data: passwd},
			{Path: "/etc/group", Data: group},
			{Path: "/tmp", Dir: true, Mode: 0o1777},
		},
		Entrypoint: []string{CairnBinary},
		Env:        []string{"PATH=/usr/local/bin"},
		User:       "0:0",
		Labels: map[string]string{
			"org.opencontainers.image.title":   "cairn",
			"org.opencontainers.image.source":  "https://github.com/cairn-backup/cairn",
			"org.opencontainers.image.version": version,
		},
	}, nil
}

// BinaryVersion asks a cairn binary for its version (`cairn version
// --json`), so that the image's tag is what the binary says it is.
func BinaryVersion(binary string) (string, error) {
	out, err := exec.Command(binary, "version", "--json").Output()
	if err != nil {
		return "", fmt.Errorf("%s version: %w (is it a cairn binary for this machine?)", binary, err)
	}
	var v struct{ Version string }
	if err := json.Unmarshal(out, &v); err != nil || v.Version == "" {
		return "", fmt.Errorf("%s version --json: unexpected output %q", binary, strings.TrimSpace(string(out)))
	}
	return v.Version, nil
}
