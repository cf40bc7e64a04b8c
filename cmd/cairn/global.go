package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/s3"
	"github.com/spf13/cobra"
)

// globalOptions holds the flags every command shares and the helpers that
// turn them into an opened repository.
type globalOptions struct {
	env *cliEnv

	repo         string
	passwordFile string
	quiet        bool
	verbose      int
	json         bool
	noLock       bool
	readOnly     bool
	options      []string
	compression  string
	packSize     int
	cacheDir     string
	noCache      bool
	cleanupCache bool
	cacheMaxSize string
	// cacheTemp is a cache directory of this run only (check reads the
	// repository, not what an earlier run cached).
	cacheTemp   string
	cacert      string
	insecureTLS bool
	limitUp     int
	limitDown   int
	retryLock   time.Duration

	// writer is set by declareWrite: the running command writes to the
	// repository, so --no-lock does not apply to it.
	writer bool
	// prefetch asks repo.Open to list locks, snapshots and the index
	// while it derives the key (repo.Options.Prefetch says for whom).
	prefetch bool

	// outputFormat is a -o value without "=" ("yaml", "json") on a command
	// annotated with outputOptionAnnotation: kubectl's -o there, while
	// every other command keeps -o for restic's --option key=value.
	outputFormat string

	// extended holds the -o key=value options after validation; backends
	// read their keys from here.
	extended map[string]string
	// kdf are the scrypt costs of keys this run writes (init, key add).
	kdf crypto.KDFParams

	outMu sync.Mutex
	// progress, when drawing, is cleared before messages go to stderr.
	progress *progressDisplay
}

// extOption is one key accepted by -o. Backends add their keys here
// (e.g. "s3.connections").
type extOption struct {
	key   string
	help  string
	apply func(g *globalOptions, value string) error
}

var extOptions = []extOption{
	{key: "read-only", help: "open the repository read-only (true/false)", apply: func(g *globalOptions, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("-o read-only=%s: want true or false", v)
		}
		g.readOnly = g.readOnly || b
		return nil
	}},
}

func (g *globalOptions) addFlags(root *cobra.Command) {
	f := root.PersistentFlags()
	f.StringVarP(&g.repo, "repo", "r", "", "repository `location`: a local path or s3:https://HOST/BUCKET[/PREFIX] (default $CAIRN_REPOSITORY)")
	f.StringVar(&g.passwordFile, "password-file", "", "read the repository password from `file` (default $CAIRN_PASSWORD_FILE)")
	f.BoolVarP(&g.quiet, "quiet", "q", false, "print only errors")
	f.CountVarP(&g.verbose, "verbose", "v", "print more (repeat for even more)")
	f.BoolVar(&g.json, "json", false, "print machine-readable JSON to stdout")
	f.BoolVar(&g.noLock, "no-lock", false, "do not lock the repository, for commands that only read (opens it read-only; commands that write lock anyway or refuse)")
	f.BoolVar(&g.readOnly, "read-only", false, "open the repository read-only: commands that write fail")
	f.StringArrayVarP(&g.options, "option", "o", nil, "set an extended `key=value` option (known: "+knownExtKeys()+")")
	f.StringVar(&g.compression, "compression", "", "compression `mode` for new data: auto, off or max (default $CAIRN_COMPRESSION or auto)")
	f.IntVar(&g.packSize, "pack-size", 0, "target pack size in `MiB` (default $CAIRN_PACK_SIZE or 16)")
	f.StringVar(&g.cacheDir, "cache-dir", "", "local cache `directory` (default $CAIRN_CACHE_DIR, else $XDG_CACHE_HOME/cairn or ~/.cache/cairn); giving it also caches a local repository")
	f.BoolVar(&g.noCache, "no-cache", false, "do not use a local cache")
	f.BoolVar(&g.cleanupCache, "cleanup-cache", false, "remove the caches of repositories not used for 30 days")
	f.StringVar(&g.cacheMaxSize, "cache-max-size", "", "bound the cached tree packs of one repository to `size` (e.g. 500M, 4G; default 4G)")
	f.StringVar(&g.cacert, "cacert", "", "also trust the PEM certificate(s) in `file` for TLS (S3)")
	f.BoolVar(&g.insecureTLS, "insecure-tls", false, "skip TLS certificate verification (S3; for testing only)")
	f.DurationVar(&g.retryLock, "retry-lock", 0, "if the repository is locked, retry for up to `duration` (e.g. 5m) before giving up")
	f.IntVar(&g.limitUp, "limit-upload", 0, "limit uploads to `KiB/s` (0: unlimited)")
	f.IntVar(&g.limitDown, "limit-download", 0, "limit downloads to `KiB/s` (0: unlimited)")
}

// outputOptionAnnotation marks a command on which "-o yaml" and "-o json"
// choose the output format: a command-local -o would clash with the
// persistent --option in cobra, so the value tells them apart.
const outputOptionAnnotation = "cairn.io/output-option"

func knownExtKeys() string {
	keys := make([]string, len(extOptions))
	for i, o := range extOptions {
		keys[i] = o.key
	}
	slices.Sort(keys)
	return strings.Join(keys, ", ")
}

// resolve fills unset flags from the environment and validates them; it
// runs before every command.
func (g *globalOptions) resolve(cmd *cobra.Command) error {
	getenv := g.env.getenv
	if g.repo == "" {
		g.repo = getenv("CAIRN_REPOSITORY")
	}
	if g.passwordFile == "" {
		g.passwordFile = getenv("CAIRN_PASSWORD_FILE")
	}
	if g.compression == "" {
		g.compression = getenv("CAIRN_COMPRESSION")
	}
	if _, err := repo.ParseCompression(g.compression); err != nil {
		return err
	}
	if !cmd.Flags().Changed("pack-size") {
		if s := getenv("CAIRN_PACK_SIZE"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil {
				return fmt.Errorf("CAIRN_PACK_SIZE=%q is not a number of MiB", s)
			}
			g.packSize = n
		}
	}
	if g.packSize != 0 && (g.packSize < 4 || g.packSize > 128) {
		return fmt.Errorf("--pack-size %d is out of range: use 4 to 128 (MiB)", g.packSize)
	}
	if err := g.resolveCache(); err != nil {
		return err
	}
	g.extended = map[string]string{}
	for _, kv := range g.options {
		key, value, ok := strings.Cut(kv, "=")
		key = strings.TrimSpace(key)
		if !ok && cmd.Annotations[outputOptionAnnotation] != "" {
			if kv != "yaml" && kv != "json" {
				return fmt.Errorf("-o %q: want yaml or json (the output format), or key=value", kv)
			}
			g.outputFormat = kv
			continue
		}
		if !ok || key == "" {
			return fmt.Errorf("-o %q: want key=value", kv)
		}
		i := slices.IndexFunc(extOptions, func(o extOption) bool { return o.key == key })
		if i < 0 {
			return fmt.Errorf("unknown option -o %s; known options: %s", key, knownExtKeys())
		}
		if err := extOptions[i].apply(g, value); err != nil {
			return err
		}
		g.extended[key] = value
	}
	return nil
}

func (g *globalOptions) repoOptions() repo.Options {
	comp, _ := repo.ParseCompression(g.compression) // validated in resolve
	// Without a lock nothing may be written: a reader run with --no-lock
	// gets a read-only repository, so a write it was not meant to do fails
	// instead of racing a prune.
	ro := g.readOnly || (g.noLock && !g.writer)
	return repo.Options{PackSize: g.packSize << 20, Compression: comp, ReadOnly: ro, KDF: g.kdf, Prefetch: g.prefetch,
		Uploaders: uploaders(g.repo), Warn: func(msg string) { g.warnf("warning: %s\n", msg) }}
}

// uploaders is how many packs are stored at once. A local disk takes one
// while the next is filled; an object store answers each upload a round
// trip later, so more are in flight (S3 big set behind 40 ms: 6.6 s with
// 4 against 7.1 s with 2; each costs a pack's memory, 16 MiB by default).
func uploaders(loc string) int {
	if s3.IsLocation(loc) {
		return 4
	}
	return 2
}

// kdfParams are the scrypt costs for new key files: calibrated to about
// half a second, or N from $CAIRN_KDF_N (tests use it to stay fast).
func (g *globalOptions) kdfParams() (crypto.KDFParams, error) {
	if s := g.env.getenv("CAIRN_KDF_N"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 2 || bits.OnesCount(uint(n)) != 1 {
			return crypto.KDFParams{}, fmt.Errorf("CAIRN_KDF_N=%q must be a power of two", s)
		}
		return crypto.KDFParams{N: n, R: 8, P: 1}, nil
	}
	// 60 MiB like restic: a larger N buys little and every open pays it in RSS.
	return crypto.Calibrate(500*time.Millisecond, 60), nil
}

// password finds the repository password: --password-file, then
// $CAIRN_PASSWORD, then a prompt (twice when confirm is set).
func (g *globalOptions) password(ctx context.Context, confirm bool) (string, error) {
	if g.passwordFile != "" {
		return readPasswordFile(g.passwordFile)
	}
	if pw := g.env.getenv("CAIRN_PASSWORD"); pw != "" {
		return pw, nil
	}
	if g.env.readPassword == nil {
		return "", errors.New("no password: set CAIRN_PASSWORD or --password-file")
	}
	prompt := "enter password for repository: "
	if confirm {
		prompt = "enter password for new repository: "
	}
	return g.promptPassword(ctx, prompt, confirm)
}

func readPasswordFile(name string) (string, error) {
	buf, err := os.ReadFile(name)
	if err != nil {
		return "", fmt.Errorf("read password file: %w", err)
	}
	pw := strings.TrimSpace(string(buf)) // as restic does
	if pw == "" {
		return "", fmt.Errorf("password file %s is empty", name)
	}
	return pw, nil
}

func (g *globalOptions) promptPassword(ctx context.Context, prompt string, confirm bool) (string, error) {
	ask := func(p string) (string, error) {
		fmt.Fprint(g.env.stderr, p)
		pw, err := g.env.readPassword(ctx)
		fmt.Fprintln(g.env.stderr)
		return pw, err
	}
	pw, err := ask(prompt)
	if err != nil {
		return "", err
	}
	if pw == "" {
		return "", errors.New("empty password: type a password at the prompt")
	}
	if confirm {
		again, err := ask("enter password again: ")
		if err != nil {
			return "", err
		}
		if again != pw {
			return "", errors.New("passwords do not match; run the command again")
		}
	}
	return pw, nil
}

// openRepo opens the repository with the password; it does not load the
// index.
func (g *globalOptions) openRepo(ctx context.Context) (*repo.Repository, error) {
	be, err := g.openBackend(ctx, g.repo, false)
	if err != nil {
		return nil, err
	}
	pw, err := g.password(ctx, false)
	if err != nil {
		be.Close()
		return nil, err
	}
	g.verbosef(2, "opening repository %s\n", be.Location())
	cb := g.wrapCache(be)
	if cb != nil {
		be = cb
	}
	r, err := repo.Open(ctx, be, pw, g.repoOptions())
	if err != nil {
		be.Close()
		return nil, err
	}
	if cb != nil {
		g.attachCache(cb, r.Config().ID)
	} else if g.cleanupCache {
		g.oldCaches()
	}
	g.verbosef(1, "repository %s opened (version %d)\n", shortRepoID(r), r.Config().Version)
	return r, nil
}

func shortRepoID(r *repo.Repository) string {
	id := r.Config().ID
	if len(id) > 10 {
		id = id[:10]
	}
	return id
}

// checkWritable fails early for commands that write when the repository
// is opened read-only.
func (g *globalOptions) checkWritable(what string) error {
	if g.readOnly {
		return fmt.Errorf("%s needs to write, but the repository is read-only (--read-only or -o read-only=true); drop that option", what)
	}
	return nil
}

// writeLock says what lock a command that writes needs.
type writeLock int

const (
	// appendLock: the command only adds files (backup, key add). It takes a
	// shared lock even with --no-lock, as restic does for backup.
	appendLock writeLock = iota + 1
	// exclusiveLock: the command removes files (prune, forget, repair, key
	// remove). --no-lock is refused: the user meant something else.
	exclusiveLock
	// noLockNeeded: the command writes but takes no lock (init, unlock).
	noLockNeeded
)

// declareWrite is called by every command that writes to the repository,
// before it opens it: it fails for read-only repositories, and makes sure
// --no-lock never lets a write run without its lock.
func (g *globalOptions) declareWrite(what string, kind writeLock) error {
	if err := g.checkWritable(what); err != nil {
		return err
	}
	g.writer = true
	if !g.noLock {
		return nil
	}
	switch kind {
	case exclusiveLock:
		return fmt.Errorf("%s removes data and needs an exclusive lock; --no-lock is only for commands that read: drop it", what)
	case appendLock:
		g.warnf("note: --no-lock is ignored: %s writes to the repository, so it takes a shared lock anyway\n", what)
	}
	return nil
}

// lock takes a lock; with --no-lock, only commands that did not declare a
// write skip it. The returned function releases the lock, also after the
// context was cancelled.
func (g *globalOptions) lock(ctx context.Context, r *repo.Repository, exclusive bool) (func(), error) {
	if g.noLock && !g.writer {
		return func() {}, nil
	}
	if r.ReadOnly() && g.writer {
		return nil, fmt.Errorf("internal error: a command that writes opened the repository read-only")
	}
	take := r.Lock
	if g.prefetch && g.retryLock == 0 {
		// The lock file is written and checked while the command reads;
		// the repository holds every write until then (repo.LockAhead).
		// Not with --retry-lock: a conflict found then could not be
		// waited out.
		take = r.LockAhead
	}
	l, err := take(ctx, exclusive)
	deadline, wait := time.Now().Add(g.retryLock), 250*time.Millisecond
	for errors.Is(err, repo.ErrLocked) && g.retryLock > 0 {
		left := time.Until(deadline)
		if left <= 0 {
			return nil, fmt.Errorf("gave up after --retry-lock %v: %w", g.retryLock, err)
		}
		g.verbosef(1, "repository is locked, retrying in %v\n", min(wait, left).Round(time.Millisecond))
		select {
		case <-time.After(min(wait, left)):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		wait = min(2*wait, 10*time.Second)
		l, err = r.Lock(ctx, exclusive)
	}
	if err != nil {
		return nil, err
	}
	return func() {
		if err := l.Unlock(context.WithoutCancel(ctx)); err != nil {
			g.warnf("warning: %v\n", err)
		}
	}, nil
}

// openLocked opens the repository and takes a lock; the returned function
// releases both. Callers load the index themselves, after reading the
// snapshots they need (design.rst's read order).
func (g *globalOptions) openLocked(ctx context.Context, exclusive bool) (*repo.Repository, func(), error) {
	r, err := g.openRepo(ctx)
	if err != nil {
		return nil, nil, err
	}
	unlock, err := g.lock(ctx, r, exclusive)
	if err != nil {
		r.Close()
		return nil, nil, err
	}
	return r, func() { unlock(); r.Close() }, nil
}

// printf writes normal output to stdout unless -q or --json is given.
func (g *globalOptions) printf(format string, args ...any) {
	if g.quiet || g.json {
		return
	}
	g.outMu.Lock()
	defer g.outMu.Unlock()
	g.progress.clear()
	fmt.Fprintf(g.env.stdout, format, args...)
}

// outf writes the data a listing command was asked for (tables, stats);
// unlike printf it ignores -q.
func (g *globalOptions) outf(format string, args ...any) {
	g.outMu.Lock()
	defer g.outMu.Unlock()
	fmt.Fprintf(g.env.stdout, format, args...)
}

// verbosef writes when -v was given at least level times.
func (g *globalOptions) verbosef(level int, format string, args ...any) {
	if g.verbose < level {
		return
	}
	g.printf(format, args...)
}

// warnf writes to stderr, even with -q.
func (g *globalOptions) warnf(format string, args ...any) {
	g.outMu.Lock()
	defer g.outMu.Unlock()
	g.progress.clear()
	fmt.Fprintf(g.env.stderr, format, args...)
}

// printJSON writes v as JSON to stdout.
func (g *globalOptions) printJSON(v any, indent bool) error {
	var buf []byte
	var err error
	if indent {
		buf, err = json.MarshalIndent(v, "", "  ")
	} else {
		buf, err = json.Marshal(v)
	}
	if err != nil {
		return err
	}
	g.outMu.Lock()
	defer g.outMu.Unlock()
	_, err = fmt.Fprintf(g.env.stdout, "%s\n", buf)
	return err
}
