package local

import (
	"errors"
	"io/fs"
	"os"
	"strconv"
	"syscall"

	"github.com/labelbackup/label-backup/sdk"
)

// osError is a failed filesystem operation described in our own words. It
// never carries the os package's path (which may be absolute), and it wraps
// both the SDK sentinel for its cause, so the host gets the right error
// code, and the cause itself, so callers can still test for the errno.
type osError struct {
	msg   string
	kind  error // SDK sentinel, or nil
	cause error // the bare errno or error, without any path
}

func (e *osError) Error() string { return e.msg + ": " + e.cause.Error() }

func (e *osError) Unwrap() []error {
	if e.kind == nil {
		return []error{e.cause}
	}
	return []error{e.kind, e.cause}
}

// pathError wraps err from an os call as "msg: cause".
func pathError(msg string, err error) error {
	cause := bareError(err)
	return &osError{msg: msg, kind: classify(cause), cause: cause}
}

// keyError wraps err from an os call made for key as `op "key": cause`.
func keyError(op, key string, err error) error {
	return pathError(op+" "+strconv.Quote(key), err)
}

// bareError strips the path the os package put into err: with an os.Root
// it is relative, but we would rather not depend on that to keep the base
// directory out of messages.
func bareError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}

// classify maps an OS error to the SDK sentinel the host acts on.
func classify(err error) error {
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return sdk.ErrNoSpace
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EROFS):
		return sdk.ErrPermission
	case errors.Is(err, fs.ErrNotExist):
		return sdk.ErrNotFound
	}
	return nil
}
