package repo

import (
	"encoding/json"
	"fmt"
)

// BlobType distinguishes file contents from directory listings; restic keeps
// them in separate packs.
type BlobType uint8

const (
	InvalidBlob BlobType = iota
	DataBlob
	TreeBlob
)

func (t BlobType) String() string {
	switch t {
	case DataBlob:
		return "data"
	case TreeBlob:
		return "tree"
	}
	return fmt.Sprintf("invalid(%d)", uint8(t))
}

func (t BlobType) MarshalJSON() ([]byte, error) {
	if t != DataBlob && t != TreeBlob {
		return nil, fmt.Errorf("invalid blob type %d", t)
	}
	return json.Marshal(t.String())
}

func (t *BlobType) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case `"data"`:
		*t = DataBlob
	case `"tree"`:
		*t = TreeBlob
	default:
		return fmt.Errorf("invalid blob type %s", b)
	}
	return nil
}

// BlobHandle identifies a blob by type and plaintext hash.
type BlobHandle struct {
	ID   ID
	Type BlobType
}

func (h BlobHandle) String() string { return h.Type.String() + "/" + h.ID.Str() }

// PackedBlob says where a blob lives: which pack, at what offset, and how
// long its encrypted (and possibly compressed) form is.
type PackedBlob struct {
	BlobHandle
	Pack               ID
	Offset             uint32
	Length             uint32 // stored length: IV + ciphertext + MAC
	UncompressedLength uint32 // 0 when the blob is not compressed
}

// IsCompressed reports whether the stored blob is zstd-compressed.
func (b PackedBlob) IsCompressed() bool { return b.UncompressedLength != 0 }

// PlaintextLength is the length of the blob's data once decrypted and decompressed.
func (b PackedBlob) PlaintextLength() uint32 {
	if b.IsCompressed() {
		return b.UncompressedLength
	}
	return b.Length - 32
}
