package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"golang.org/x/time/rate"
)

// ErrPermanent marks errors that retrying cannot fix (refused credentials).
// Mark them with Permanent, which keeps their text as it is.
var ErrPermanent = errors.New("permanent error")

// Permanent marks err as one that retrying cannot fix: errors.Is(err,
// ErrPermanent) holds, and its message gains no ": permanent error" tail.
func Permanent(err error) error { return permanentError{err} }

type permanentError struct{ error }

func (e permanentError) Unwrap() error        { return e.error }
func (e permanentError) Is(target error) bool { return target == ErrPermanent }

// ReadOnlyBackend refuses every write, so a storage location can be used for
// restores without any risk of changing it.
type ReadOnlyBackend struct{ Backend }

func (b ReadOnlyBackend) Save(ctx context.Context, h Handle, rd io.Reader, size int64) error {
	return fmt.Errorf("save %v: %w", h, ErrReadOnly)
}

func (b ReadOnlyBackend) Remove(ctx context.Context, h Handle) error {
	return fmt.Errorf("remove %v: %w", h, ErrReadOnly)
}

// RetryBackend retries transient failures with exponential backoff.
type RetryBackend struct {
	Backend
	Attempts int           // total tries, default 6
	Delay    time.Duration // first backoff, doubled each time; default 500ms
	// OnRetry, when set, is told about each retry (for -v output).
	OnRetry func(op string, err error, wait time.Duration)
}

func permanent(err error) bool {
	return err == nil || IsNotExist(err) || errors.Is(err, ErrPermanent) || errors.Is(err, ErrReadOnly) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

func (b RetryBackend) retry(ctx context.Context, op string, fn func() error) error {
	attempts, delay := b.Attempts, b.Delay
	if attempts <= 0 {
		attempts = 6
	}
	if delay <= 0 {
		delay = 500 * time.Millisecond
	}
	var err error
	for i := 0; i < attempts; i++ {
		if err = fn(); permanent(err) {
			return err
		}
		if i == attempts-1 {
			break
		}
		if b.OnRetry != nil {
			b.OnRetry(op, err, delay)
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return ctx.Err()
		}
		delay = min(2*delay, 10*time.Second)
	}
	return fmt.Errorf("%w (gave up after %d attempts)", err, attempts)
}

func (b RetryBackend) Save(ctx context.Context, h Handle, rd io.Reader, size int64) error {
	seeker, canRewind := rd.(io.Seeker)
	first := true
	return b.retry(ctx, "save "+h.String(), func() error {
		if !first {
			if !canRewind {
				return Permanent(fmt.Errorf("save %v: cannot retry a non-seekable upload", h))
			}
			if _, err := seeker.Seek(0, io.SeekStart); err != nil {
				return Permanent(fmt.Errorf("save %v: rewind: %w", h, err))
			}
		}
		first = false
		return b.Backend.Save(ctx, h, rd, size)
	})
}

func (b RetryBackend) Load(ctx context.Context, h Handle, length int, offset int64) (rc io.ReadCloser, err error) {
	err = b.retry(ctx, "load "+h.String(), func() error {
		rc, err = b.Backend.Load(ctx, h, length, offset)
		return err
	})
	return rc, err
}

func (b RetryBackend) Stat(ctx context.Context, h Handle) (fi FileInfo, err error) {
	err = b.retry(ctx, "stat "+h.String(), func() error {
		fi, err = b.Backend.Stat(ctx, h)
		return err
	})
	return fi, err
}

// List is retried only until fn has seen the first file, so no file is
// reported twice.
func (b RetryBackend) List(ctx context.Context, t FileType, fn func(FileInfo) error) error {
	started := false
	var fnErr error
	err := b.retry(ctx, "list "+t.String(), func() error {
		if started {
			return Permanent(fmt.Errorf("list %v: failed midway", t))
		}
		return b.Backend.List(ctx, t, func(fi FileInfo) error {
			started = true
			if fnErr = fn(fi); fnErr != nil {
				return fnErr
			}
			return nil
		})
	})
	if fnErr != nil {
		return fnErr
	}
	return err
}

func (b RetryBackend) Remove(ctx context.Context, h Handle) error {
	return b.retry(ctx, "remove "+h.String(), func() error { return b.Backend.Remove(ctx, h) })
}

// LimitBackend caps upload and download rates (bytes per second; 0 = none).
type LimitBackend struct {
	Backend
	up, down *rate.Limiter
}

// NewLimitBackend wraps be with the given KiB/s limits.
func NewLimitBackend(be Backend, upKiB, downKiB int) Backend {
	if upKiB <= 0 && downKiB <= 0 {
		return be
	}
	lb := LimitBackend{Backend: be}
	if upKiB > 0 {
		lb.up = rate.NewLimiter(rate.Limit(upKiB*1024), 64*1024)
	}
	if downKiB > 0 {
		lb.down = rate.NewLimiter(rate.Limit(downKiB*1024), 64*1024)
	}
	return lb
}

type limitedReader struct {
	ctx context.Context
	rd  io.Reader
	l   *rate.Limiter
}

func (r *limitedReader) Read(p []byte) (int, error) {
	if len(p) > r.l.Burst() {
		p = p[:r.l.Burst()]
	}
	n, err := r.rd.Read(p)
	if n > 0 {
		if werr := r.l.WaitN(r.ctx, n); werr != nil {
			return n, werr
		}
	}
	return n, err
}

type limitedSeekReader struct {
	*limitedReader
	s io.Seeker
}

func (r limitedSeekReader) Seek(off int64, whence int) (int64, error) { return r.s.Seek(off, whence) }

func (b LimitBackend) Save(ctx context.Context, h Handle, rd io.Reader, size int64) error {
	if b.up != nil {
		lr := &limitedReader{ctx: ctx, rd: rd, l: b.up}
		if s, ok := rd.(io.Seeker); ok {
			rd = limitedSeekReader{lr, s}
		} else {
			rd = lr
		}
	}
	return b.Backend.Save(ctx, h, rd, size)
}

type limitedReadCloser struct {
	io.Reader
	io.Closer
}

func (b LimitBackend) Load(ctx context.Context, h Handle, length int, offset int64) (io.ReadCloser, error) {
	rc, err := b.Backend.Load(ctx, h, length, offset)
	if err != nil || b.down == nil {
		return rc, err
	}
	return limitedReadCloser{&limitedReader{ctx: ctx, rd: rc, l: b.down}, rc}, nil
}
