package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"time"

	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/archiver"
	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

type etcdFlags struct {
	endpoints         []string
	cacert, cert, key string
	dialTimeout       time.Duration
	filename          string
	backup            backupFlags // --tag, --host, --time, --ttl
}

func newEtcdCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "etcd",
		Short: "Back up etcd, the store of a Kubernetes control plane",
	}
	var f etcdFlags
	snap := &cobra.Command{
		Use:   "snapshot",
		Short: "Stream an etcd snapshot into a new snapshot of the repository",
		Long: `Stream a snapshot of an etcd member (the v3 Maintenance Snapshot call, as
` + "`etcdctl snapshot save`" + ` makes) straight into a new repository snapshot, as the
file --filename: nothing is written to local disk. The checksum etcd puts
at the end of the stream is verified before the snapshot is saved; a
broken stream saves nothing. The file is what ` + "`etcdutl snapshot restore`" + `
takes: get it back with ` + "`cairn dump latest /etcd-snapshot.db > snap.db`" + `.

On a kubeadm control plane:
  cairn etcd snapshot --endpoints https://127.0.0.1:2379 \
    --cacert /etc/kubernetes/pki/etcd/ca.crt \
    --cert /etc/kubernetes/pki/etcd/healthcheck-client.crt \
    --key /etc/kubernetes/pki/etcd/healthcheck-client.key --tag etcd`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error { return runEtcdSnapshot(cmd.Context(), g, &f) },
	}
	fs := snap.Flags()
	fs.StringSliceVar(&f.endpoints, "endpoints", []string{"https://127.0.0.1:2379"}, "etcd client `URLs` (comma-separated; one member's snapshot is taken)")
	fs.StringVar(&f.cacert, "cacert", "", "verify the etcd server with the CA certificates in `file`")
	fs.StringVar(&f.cert, "cert", "", "client certificate `file`")
	fs.StringVar(&f.key, "key", "", "client key `file`")
	fs.DurationVar(&f.dialTimeout, "dial-timeout", 10*time.Second, "give up connecting after `duration`")
	fs.StringVar(&f.filename, "filename", "etcd-snapshot.db", "`name` of the file in the snapshot")
	fs.StringArrayVar(&f.backup.tags, "tag", nil, "add `tags` to the snapshot (\"a,b\" adds two; can be repeated)")
	fs.StringVarP(&f.backup.host, "host", "H", "", "record `hostname` instead of this machine's name (default $CAIRN_HOST)")
	fs.StringVar(&f.backup.ttl, "ttl", "", "let the snapshot expire after `duration` (\"720h\", \"30d\"; 0 = never): `forget --expired` removes it then")
	cmd.AddCommand(snap)
	return cmd
}

func runEtcdSnapshot(ctx context.Context, g *globalOptions, f *etcdFlags) error {
	if err := g.declareWrite("etcd snapshot", appendLock); err != nil {
		return err
	}
	tlsCfg, err := etcdTLS(f)
	if err != nil {
		return err
	}
	when, tags, host, err := f.backup.meta(g)
	if err != nil {
		return err
	}
	var cli *clientv3.Client
	var stream io.ReadCloser
	var check *trailerCheck
	src := streamSource{
		open: func(ctx context.Context) (io.Reader, error) {
			cli, err = clientv3.New(clientv3.Config{
				Endpoints: f.endpoints, TLS: tlsCfg, DialTimeout: f.dialTimeout,
				Logger: zap.NewNop(), Context: ctx,
			})
			if err != nil {
				return nil, fmt.Errorf("connect to etcd %v: %w", f.endpoints, err)
			}
			// gRPC waits for a connection as long as the context lives:
			// ask each member's status first, within --dial-timeout, and
			// take the snapshot from the first that answers.
			var reached []string
			for _, ep := range f.endpoints {
				sctx, cancel := context.WithTimeout(ctx, f.dialTimeout)
				_, serr := cli.Status(sctx, ep)
				cancel()
				if serr == nil {
					reached = append(reached, ep)
					break
				}
				err = serr
			}
			if len(reached) == 0 {
				cli.Close()
				return nil, fmt.Errorf("no etcd member at %v answered within %s (%v): check --endpoints and the TLS files", f.endpoints, f.dialTimeout, err)
			}
			cli.SetEndpoints(reached...)
			if stream, err = cli.Snapshot(ctx); err != nil {
				cli.Close()
				return nil, fmt.Errorf("etcd snapshot from %v: %w (check --endpoints and the TLS files)", f.endpoints, err)
			}
			check = newTrailerCheck()
			return io.TeeReader(stream, check), nil
		},
		done: func(readErr error) error {
			stream.Close()
			cli.Close()
			if readErr != nil {
				return fmt.Errorf("etcd snapshot stream broke (%w); no snapshot was saved", readErr)
			}
			return check.verify()
		},
	}
	return backupStream(ctx, g, f.filename, src, archiver.ArchiveOptions{
		Tags: tags, Hostname: host, Time: when, ProgramVersion: "cairn " + version, Progress: &snapshot.Progress{},
	})
}

func etcdTLS(f *etcdFlags) (*tls.Config, error) {
	if f.cacert == "" && f.cert == "" && f.key == "" {
		return nil, nil // http:// endpoints, or the system's CAs via https
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.cacert != "" {
		pem, err := os.ReadFile(f.cacert)
		if err != nil {
			return nil, fmt.Errorf("--cacert: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--cacert %s: no PEM certificate in it", f.cacert)
		}
	}
	if (f.cert == "") != (f.key == "") {
		return nil, errors.New("--cert and --key go together: give both or neither")
	}
	if f.cert != "" {
		pair, err := tls.LoadX509KeyPair(f.cert, f.key)
		if err != nil {
			return nil, fmt.Errorf("--cert/--key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// trailerCheck hashes a stream whose last 32 bytes are the SHA-256 of the
// bytes before them, as etcd ends its snapshots.
type trailerCheck struct {
	h    hash.Hash
	tail []byte // the last up to 32 bytes, not hashed yet
	n    int64
}

func newTrailerCheck() *trailerCheck { return &trailerCheck{h: sha256.New()} }

func (c *trailerCheck) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	buf := append(c.tail, p...)
	if keep := sha256.Size; len(buf) > keep {
		c.h.Write(buf[:len(buf)-keep])
		buf = append([]byte(nil), buf[len(buf)-keep:]...)
	}
	c.tail = buf
	return len(p), nil
}

func (c *trailerCheck) verify() error {
	// The database is whole pages (multiples of 512 bytes); the checksum
	// makes the size 32 more than that.
	if c.n%512 != sha256.Size || !bytes.Equal(c.h.Sum(nil), c.tail) {
		return fmt.Errorf("etcd snapshot of %d bytes does not end with its checksum: the stream is damaged or not an etcd snapshot; no snapshot was saved", c.n)
	}
	return nil
}
