package sdk

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Sentinel errors. Wrap them (fmt.Errorf("...: %w", sdk.ErrNotFound)) and
// they cross the plugin boundary: the host sees errors.Is(err, sdk.ErrNotFound)
// with the same message.
var (
	// ErrInvalidArgument: bad configuration, connection string or key.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrUnauthenticated: the database or storage rejected the credentials.
	ErrUnauthenticated = errors.New("authentication failed")
	// ErrPermission: authenticated but not allowed.
	ErrPermission = errors.New("permission denied")
	// ErrNotFound: the object, database or bucket does not exist.
	ErrNotFound = errors.New("not found")
	// ErrUnavailable: a transient failure; the same call may work later.
	ErrUnavailable = errors.New("unavailable")
	// ErrUnsupported: the plugin does not implement this operation.
	ErrUnsupported = errors.New("unsupported")
	// ErrIntegrity: sizes or checksums do not match; data would be corrupt.
	ErrIntegrity = errors.New("integrity check failed")
	// ErrNoSpace: the storage is full.
	ErrNoSpace = errors.New("no space left")
	// ErrEmptyDump: a dump produced no bytes.
	ErrEmptyDump = errors.New("dump produced no data")
)

var sentinelCodes = []struct {
	err  error
	code codes.Code
}{
	{ErrInvalidArgument, codes.InvalidArgument},
	{ErrUnauthenticated, codes.Unauthenticated},
	{ErrPermission, codes.PermissionDenied},
	{ErrNotFound, codes.NotFound},
	{ErrUnavailable, codes.Unavailable},
	{ErrUnsupported, codes.Unimplemented},
	{ErrIntegrity, codes.DataLoss},
	{ErrNoSpace, codes.ResourceExhausted},
	{ErrEmptyDump, codes.FailedPrecondition},
	{context.Canceled, codes.Canceled},
	{context.DeadlineExceeded, codes.DeadlineExceeded},
}

// toStatus turns a plugin error into a gRPC status error carrying the code of
// the first sentinel it wraps (Unknown when none) and its full message.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	for _, s := range sentinelCodes {
		if errors.Is(err, s.err) {
			return status.Error(s.code, err.Error())
		}
	}
	if st, ok := status.FromError(err); ok {
		return status.Error(st.Code(), err.Error())
	}
	return status.Error(codes.Unknown, err.Error())
}

// RemoteError is an error that came back from a plugin. It wraps the
// sentinel matching its gRPC code, so errors.Is works across the boundary.
type RemoteError struct {
	Code    codes.Code
	Message string
}

func (e *RemoteError) Error() string { return e.Message }

// GRPCStatus lets a RemoteError travel on through another gRPC hop unchanged.
func (e *RemoteError) GRPCStatus() *status.Status { return status.New(e.Code, e.Message) }

// Unwrap returns the sentinel for the error's code, if any.
func (e *RemoteError) Unwrap() error {
	for _, s := range sentinelCodes {
		if s.code == e.Code {
			return s.err
		}
	}
	return nil
}

// fromStatus turns an error returned by a gRPC call into a RemoteError whose
// message is prefixed with op. A plugin that died mid-call surfaces as
// ErrUnavailable; the host tells that apart by the plugin process's state.
func fromStatus(op string, err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%s: %w", op, err)
	}
	return &RemoteError{Code: st.Code(), Message: op + ": " + st.Message()}
}
