package repo

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Temp files of the local backend live in tmp/<owner>/, one directory per
// process, named by tempOwner after its host, PID namespace and PID. Only
// the owner writes there, so a slow writer's files are never pulled away:
// opening a repository removes only directories of processes on this host
// (and PID namespace) that no longer run, and an exclusive lock (prune,
// repair) may also remove the rest once untouched for staleTempAge.

// staleTempAge is how long temp files under tmp/ that cairn cannot trace
// to a process must stay untouched before an exclusive lock holder removes
// them. No locked writer can still own them then: its lock would be stale.
const staleTempAge = time.Hour

const tempOwnerPrefix = "cairn-"

// tempOwner names this process's temp directory:
// cairn-<host>-<pidns>-<pid>.
func tempOwner() string {
	host, _ := os.Hostname()
	return tempOwnerPrefix + sanitizeHost(host) + "-" + strconv.FormatUint(pidNamespace(), 10) + "-" + strconv.Itoa(os.Getpid())
}

func sanitizeHost(h string) string {
	if h == "" {
		return "unknown"
	}
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' {
			return r
		}
		return '_' // '-' separates the fields
	}, h)
}

// pidNamespace identifies the PID namespace (0 if unknown): containers on
// one host may share a host name but not their PIDs.
func pidNamespace() uint64 {
	link, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return 0
	}
	// "pid:[4026531836]"
	link = strings.TrimSuffix(strings.TrimPrefix(link, "pid:["), "]")
	n, _ := strconv.ParseUint(link, 10, 64)
	return n
}

// parseTempOwner splits a temp directory name; ok is false for names that
// are not cairn's.
func parseTempOwner(name string) (host string, ns uint64, pid int, ok bool) {
	rest, found := strings.CutPrefix(name, tempOwnerPrefix)
	if !found {
		return "", 0, 0, false
	}
	i := strings.LastIndexByte(rest, '-')
	if i < 0 {
		return "", 0, 0, false
	}
	pid, err := strconv.Atoi(rest[i+1:])
	if err != nil || pid <= 0 {
		return "", 0, 0, false
	}
	rest = rest[:i]
	j := strings.LastIndexByte(rest, '-')
	if j < 0 {
		return "", 0, 0, false
	}
	ns, err = strconv.ParseUint(rest[j+1:], 10, 64)
	if err != nil {
		return "", 0, 0, false
	}
	return rest[:j], ns, pid, true
}

// processGone reports whether no process with this PID runs (here).
func processGone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// removeDeadTemp removes the temp directories of processes that ran on
// this host, in this PID namespace, and have exited. Everything else stays:
// its owner may still be writing.
func removeDeadTemp(tmp string) {
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return
	}
	host, _ := os.Hostname()
	host, ns := sanitizeHost(host), pidNamespace()
	for _, e := range entries {
		h, n, pid, ok := parseTempOwner(e.Name())
		if !ok || !e.IsDir() || h != host || n != ns || ns == 0 || pid == os.Getpid() {
			continue
		}
		if processGone(pid) {
			_ = os.RemoveAll(filepath.Join(tmp, e.Name()))
		}
	}
}

// RemoveStaleTemp removes what is left under tmp/ by processes this host
// cannot check (other hosts, older cairn versions, other tools), once it
// was untouched for staleTempAge. Call it only under an exclusive lock.
func (l *Local) RemoveStaleTemp() (int, error) {
	tmp := filepath.Join(l.dir, "tmp")
	removeDeadTemp(tmp)
	entries, err := os.ReadDir(tmp)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, nil
		}
		return 0, err
	}
	host, _ := os.Hostname()
	host, ns := sanitizeHost(host), pidNamespace()
	n := 0
	for _, e := range entries {
		if h, hns, pid, ok := parseTempOwner(e.Name()); ok && h == host && hns == ns && ns != 0 && !processGone(pid) {
			continue // a live process here, however long it sleeps
		}
		p := filepath.Join(tmp, e.Name())
		if time.Since(newestMtime(p)) <= staleTempAge {
			continue
		}
		if err := os.RemoveAll(p); err == nil {
			n++
		}
	}
	return n, nil
}

// newestMtime is the latest modification time in the tree at p.
func newestMtime(p string) time.Time {
	var newest time.Time
	_ = filepath.Walk(p, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.ModTime().After(newest) {
			newest = fi.ModTime()
		}
		return nil
	})
	return newest
}
