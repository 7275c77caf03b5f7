//go:build !(linux || darwin || dragonfly || freebsd)

package local

import "errors"

// freeSpace is not implemented here; callers skip the free-space check.
func freeSpace(string) (uint64, error) { return 0, errors.ErrUnsupported }
