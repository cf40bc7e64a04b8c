package snapshot

import (
	"time"

	"github.com/cairn-backup/cairn/repo"
)

// Summary records what a backup did (restic 0.17+ writes the same fields).
type Summary struct {
	BackupStart         time.Time `json:"backup_start"`
	BackupEnd           time.Time `json:"backup_end"`
	FilesNew            uint64    `json:"files_new"`
	FilesChanged        uint64    `json:"files_changed"`
	FilesUnmodified     uint64    `json:"files_unmodified"`
	DirsNew             uint64    `json:"dirs_new"`
	DirsChanged         uint64    `json:"dirs_changed"`
	DirsUnmodified      uint64    `json:"dirs_unmodified"`
	DataBlobs           int       `json:"data_blobs"`
	TreeBlobs           int       `json:"tree_blobs"`
	DataAdded           uint64    `json:"data_added"`
	DataAddedPacked     uint64    `json:"data_added_packed"`
	TotalFilesProcessed uint64    `json:"total_files_processed"`
	TotalBytesProcessed uint64    `json:"total_bytes_processed"`
}

// Snapshot is the JSON document stored under snapshots/.
type Snapshot struct {
	Time           time.Time `json:"time"`
	Parent         *repo.ID  `json:"parent,omitempty"`
	Tree           *repo.ID  `json:"tree"`
	Paths          []string  `json:"paths"`
	Hostname       string    `json:"hostname,omitempty"`
	Username       string    `json:"username,omitempty"`
	UID            uint32    `json:"uid,omitempty"`
	GID            uint32    `json:"gid,omitempty"`
	Excludes       []string  `json:"excludes,omitempty"`
	Tags           []string  `json:"tags,omitempty"`
	Original       *repo.ID  `json:"original,omitempty"`
	ProgramVersion string    `json:"program_version,omitempty"`
	Summary        *Summary  `json:"summary,omitempty"`

	ID repo.ID `json:"-"` // storage ID, set when loaded or saved
}

// HasTag reports whether s carries tag t.
func (s *Snapshot) HasTag(t string) bool {
	for _, x := range s.Tags {
		if x == t {
			return true
		}
	}
	return false
}
