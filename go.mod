module github.com/cairn-backup/cairn

go 1.26.8

require (
	github.com/klauspost/compress v1.20.4
	github.com/restic/chunker v0.4.0
	golang.org/x/crypto v0.59.0
	golang.org/x/sys v0.50.0
)
