// Command mkimage builds cairn's container image without a container
// engine (make image): the same files as the Dockerfile's image, written
// as a tarball that `docker load` and `ctr images import` accept.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/cairn-backup/cairn/deploy/image"
)

func main() {
	binary := flag.String("binary", "", "static cairn `binary` (CGO_ENABLED=0 go build ./cmd/cairn)")
	out := flag.String("o", "bin/cairn-image.tar", "image tarball to write")
	ca := flag.String("ca", image.CAFile, "CA certificate `bundle` to put into the image")
	version := flag.String("version", "", "image tag; default: what `BINARY version` prints")
	flag.Parse()
	if *binary == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: mkimage -binary BIN [-o FILE] [-ca FILE] [-version V]")
		os.Exit(2)
	}
	if err := run(*binary, *out, *ca, *version); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run(binary, out, ca, version string) error {
	if _, err := os.Stat(ca); err != nil {
		return fmt.Errorf("CA bundle: %w (install ca-certificates or give -ca)", err)
	}
	if version == "" {
		var err error
		if version, err = image.BinaryVersion(binary); err != nil {
			return err
		}
	}
	spec, err := image.Cairn(binary, ca, version)
	if err != nil {
		return err
	}
	if err := image.WriteFile(out, spec); err != nil {
		return err
	}
	fmt.Printf("%s written to %s (load with: ctr images import %s, or docker load -i %s)\n", spec.Ref, out, out, out)
	return nil
}
