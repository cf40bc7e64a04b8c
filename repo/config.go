package repo

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/restic/chunker"
)

// Config is the repository's config file: format version, repository ID and
// the chunker polynomial that fixes where files are cut into blobs.
type Config struct {
	Version           int         `json:"version"`
	ID                string      `json:"id"`
	ChunkerPolynomial chunker.Pol `json:"chunker_polynomial"`
}

// Format versions cairn reads; it writes MaxVersion unless asked otherwise.
const (
	MinVersion = 1
	MaxVersion = 2
)

// NewConfig makes the config of a new repository.
func NewConfig(version int) (Config, error) {
	if version < MinVersion || version > MaxVersion {
		return Config{}, fmt.Errorf("repository version %d is not supported (use 1 or 2)", version)
	}
	pol, err := chunker.RandomPolynomial()
	if err != nil {
		return Config{}, fmt.Errorf("chunker polynomial: %w", err)
	}
	var id [32]byte
	if _, err := rand.Read(id[:]); err != nil {
		return Config{}, err
	}
	return Config{Version: version, ID: hex.EncodeToString(id[:]), ChunkerPolynomial: pol}, nil
}

func (c Config) validate() error {
	if c.Version < MinVersion || c.Version > MaxVersion {
		return fmt.Errorf("repository format version %d is not supported by this cairn (supports %d to %d)", c.Version, MinVersion, MaxVersion)
	}
	return validPolynomial(c.ChunkerPolynomial)
}

// chunkerDegree is the degree of every polynomial restic and cairn make;
// the chunker cannot use one above it, and one far below never cuts.
const chunkerDegree = 53

// ErrBadConfig is returned for a config that decrypts but makes no sense.
var ErrBadConfig = errors.New("invalid repository config")

func validPolynomial(p chunker.Pol) error {
	switch {
	case p == 0:
		return fmt.Errorf("%w: the chunker polynomial is missing or zero (the config file is damaged)", ErrBadConfig)
	case p.Deg() != chunkerDegree:
		return fmt.Errorf("%w: chunker polynomial %v has degree %d, want %d (the config file is damaged)", ErrBadConfig, p, p.Deg(), chunkerDegree)
	case !p.Irreducible():
		return fmt.Errorf("%w: chunker polynomial %v is not irreducible (the config file is damaged)", ErrBadConfig, p)
	}
	return nil
}
