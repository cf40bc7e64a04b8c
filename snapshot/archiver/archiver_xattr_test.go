package archiver

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/chunk"
	"golang.org/x/sys/unix"
)

// Every kind of entry keeps its extended attributes, whether they are read
// by path (directories, files taken from the parent) or from the file's
// open descriptor (small files read whole, large ones chunked); a value
// longer than the first guess and many names are read in full.
func TestBackupXattrsEveryPath(t *testing.T) {
	r, _ := arNewRepo(t)
	src := filepath.Join(t.TempDir(), "src")
	small := filepath.Join(src, "small")
	large := filepath.Join(src, "large")
	sub := filepath.Join(src, "sub")
	plain := filepath.Join(src, "plain")
	arWrite(t, small, []byte("small"))
	arWrite(t, large, bytes.Repeat([]byte("large file "), chunk.MinSize/5))
	arWrite(t, plain, []byte("no attributes"))
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	long := bytes.Repeat([]byte("v"), 600) // beyond getXattr's first buffer
	want := map[string]string{}
	for _, p := range []string{small, large, sub} {
		var names []string
		for i := range 36 { // names beyond the 1 KiB first list buffer
			name := fmt.Sprintf("user.attribute-number-%03d", i)
			val := []byte(filepath.Base(p))
			if i == 7 {
				val = long
			}
			if err := unix.Setxattr(p, name, val, 0); err != nil {
				t.Skipf("no user xattrs here: %v", err)
			}
			names = append(names, name+"="+string(val))
		}
		want[p] = strings.Join(names, ",")
	}
	want[plain] = ""
	check := func(what string, opts ArchiveOptions) {
		t.Helper()
		sn, _ := arBackup(t, r, []string{src}, opts)
		for p, w := range want {
			var got []string
			for _, x := range arLookup(t, r, *sn.Tree, p).ExtendedAttributes {
				got = append(got, x.Name+"="+string(x.Value))
			}
			if g := strings.Join(got, ","); g != w {
				t.Errorf("%s: %s: xattrs %.80q..., want %.80q...", what, filepath.Base(p), g, w)
			}
		}
	}
	check("first backup", ArchiveOptions{})
	// Unchanged files of a parent by another program: xattrs read by path.
	first, _ := arBackup(t, r, []string{src}, ArchiveOptions{})
	first.ProgramVersion = "restic 0.19.1"
	check("unchanged files", ArchiveOptions{Parent: first})
}
