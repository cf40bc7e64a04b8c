package repo

import (
	"encoding/hex"
	"strconv"
)

// appendIndexJSON appends the index file listing blobs, byte for byte what
// encoding/json makes of BuildIndexJSON's IndexJSON for them, without its
// reflection: a backup of 200k small files spent a third of a second
// encoding its index at the very end. Blobs of one pack must be adjacent
// (the packer appends them pack by pack); a pack that appears in two runs
// is listed twice, which readers accept.
func appendIndexJSON(dst []byte, blobs []PackedBlob) []byte {
	dst = append(dst, `{"packs":[`...)
	for i, b := range blobs {
		if i == 0 || b.Pack != blobs[i-1].Pack {
			if i > 0 {
				dst = append(dst, "]},"...)
			}
			dst = append(dst, `{"id":"`...)
			dst = hex.AppendEncode(dst, b.Pack[:])
			dst = append(dst, `","blobs":[`...)
		} else {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"id":"`...)
		dst = hex.AppendEncode(dst, b.ID[:])
		dst = append(dst, `","type":"`...)
		dst = append(dst, b.Type.String()...)
		dst = append(dst, `","offset":`...)
		dst = strconv.AppendUint(dst, uint64(b.Offset), 10)
		dst = append(dst, `,"length":`...)
		dst = strconv.AppendUint(dst, uint64(b.Length), 10)
		if b.UncompressedLength != 0 {
			dst = append(dst, `,"uncompressed_length":`...)
			dst = strconv.AppendUint(dst, uint64(b.UncompressedLength), 10)
		}
		dst = append(dst, '}')
	}
	if len(blobs) > 0 {
		dst = append(dst, "]}"...)
	}
	return append(dst, "]}"...)
}
