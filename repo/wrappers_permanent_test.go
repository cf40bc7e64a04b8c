package repo

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// Permanent marks an error for errors.Is without adding to its text, and
// what it wraps stays reachable.
func TestPermanentKeepsText(t *testing.T) {
	inner := fmt.Errorf("save x: %w", ErrNotExist)
	err := fmt.Errorf("open: %w", Permanent(inner))
	if !errors.Is(err, ErrPermanent) || !errors.Is(err, ErrNotExist) {
		t.Fatalf("errors.Is lost: %v", err)
	}
	if got := err.Error(); got != "open: save x: "+ErrNotExist.Error() || strings.Contains(got, "permanent") {
		t.Errorf("message %q", got)
	}
	if errors.Is(inner, ErrPermanent) {
		t.Error("the wrapped error itself became permanent")
	}
}
