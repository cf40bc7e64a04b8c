package repo

import (
	"crypto/rand"
	"encoding/hex"
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
	if c.ChunkerPolynomial == 0 || !c.ChunkerPolynomial.Irreducible() {
		return fmt.Errorf("config: invalid chunker polynomial %v", c.ChunkerPolynomial)
	}
	return nil
}
