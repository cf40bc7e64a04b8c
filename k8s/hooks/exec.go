package hooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/util/exec"
	"k8s.io/streaming/pkg/httpstream"
)

// OutputCap is how much of a hook's stdout and of its stderr is kept
// for the log and the result; the rest is counted and dropped.
const OutputCap = 4 << 10

// Output is what a command printed and how it ended.
type Output struct {
	Stdout, Stderr string
	Truncated      bool
	// ExitCode is set when the command ran and exited; a failure to run
	// it (no such container, the API refused) leaves it nil.
	ExitCode *int
}

// Executor runs commands in containers through the API server's
// pods/exec, as kubectl exec does: over WebSocket, falling back to SPDY
// where a server or proxy does not upgrade to it.
type Executor struct {
	cfg *rest.Config
	rc  rest.Interface
}

// NewExecutor makes an executor from the client configuration.
func NewExecutor(cfg *rest.Config) (*Executor, error) {
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &schemaCoreV1
	c.APIPath = "/api"
	c.NegotiatedSerializer = negotiatedSerializer
	rc, err := rest.RESTClientFor(c)
	if err != nil {
		return nil, fmt.Errorf("client for pods/exec: %w", err)
	}
	return &Executor{cfg: cfg, rc: rc}, nil
}

// Exec runs cmd in the container and waits for it, or for ctx. A command
// that exits non-zero returns an error and its exit code in Output.
func (e *Executor) Exec(ctx context.Context, namespace, pod, container string, cmd []string) (Output, error) {
	req := e.rc.Post().Resource("pods").Namespace(namespace).Name(pod).SubResource("exec")
	q := url.Values{"container": {container}, "stdout": {"true"}, "stderr": {"true"}}
	for _, c := range cmd {
		q.Add("command", c)
	}
	u := req.URL()
	u.RawQuery = q.Encode()
	ex, err := e.executor(u)
	if err != nil {
		return Output{}, err
	}
	stdout, stderr := &capped{max: OutputCap}, &capped{max: OutputCap}
	err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: stdout, Stderr: stderr})
	out := Output{Stdout: stdout.String(), Stderr: stderr.String(), Truncated: stdout.dropped > 0 || stderr.dropped > 0}
	var ee exec.ExitError
	switch {
	case err == nil:
		zero := 0
		out.ExitCode = &zero
	case errors.As(err, &ee) && ee.Exited():
		code := ee.ExitStatus()
		out.ExitCode = &code
		err = fmt.Errorf("exited with code %d", code)
	case ctx.Err() != nil:
		err = context.Cause(ctx)
	}
	return out, err
}

func (e *Executor) executor(u *url.URL) (remotecommand.Executor, error) {
	ws, err := remotecommand.NewWebSocketExecutor(e.cfg, http.MethodGet, u.String())
	if err != nil {
		return nil, fmt.Errorf("pods/exec over WebSocket: %w", err)
	}
	spdy, err := remotecommand.NewSPDYExecutor(e.cfg, http.MethodPost, u)
	if err != nil {
		return nil, fmt.Errorf("pods/exec over SPDY: %w", err)
	}
	return remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
}

// capped keeps the first max bytes written to it.
type capped struct {
	buf     bytes.Buffer
	max     int
	dropped int64
}

var _ io.Writer = (*capped)(nil)

func (c *capped) Write(p []byte) (int, error) {
	room := c.max - c.buf.Len()
	if room >= len(p) {
		c.buf.Write(p)
	} else {
		if room > 0 {
			c.buf.Write(p[:room])
		}
		c.dropped += int64(len(p) - max(room, 0))
	}
	return len(p), nil
}

func (c *capped) String() string { return c.buf.String() }
