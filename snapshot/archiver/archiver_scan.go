package archiver

import (
	"context"
	"io/fs"
	"os"
)

// scan counts the files and bytes below targets into Progress.TotalFiles
// and TotalBytes, ahead of the backup, so a display can estimate the time
// left. It uses the directory entries' types and lstats only regular files.
func (a *Archiver) scan(ctx context.Context, targets []string) {
	p := a.progress
	count := func(fi fs.FileInfo) {
		p.TotalFiles.Add(1)
		p.TotalBytes.Add(uint64(fi.Size()))
	}
	var walk func(dir string)
	walk = func(dir string) {
		if ctx.Err() != nil {
			return
		}
		f, err := openDir(dir)
		if err != nil {
			return // the backup itself reports it
		}
		entries, _ := f.ReadDir(-1)
		f.Close()
		for _, e := range entries {
			p := joinPath(dir, e.Name())
			if a.excluded(p) {
				continue
			}
			switch {
			case e.Type().IsDir():
				walk(p)
			case e.Type().IsRegular():
				if fi, err := e.Info(); err == nil {
					count(fi)
				}
			}
		}
	}
	for _, t := range targets {
		if a.excluded(t) {
			continue
		}
		fi, err := os.Lstat(t)
		switch {
		case err != nil:
		case fi.Mode().IsRegular():
			count(fi)
		case fi.IsDir():
			walk(t)
		}
	}
	if ctx.Err() == nil {
		p.ScanDone.Store(true)
	}
}
