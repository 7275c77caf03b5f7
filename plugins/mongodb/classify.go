package mongodb

import (
	"context"
	"errors"
	"strings"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/auth"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"

	"github.com/labelbackup/label-backup/sdk"
)

// Server error codes (src/mongo/base/error_codes.yml).
const (
	codeUnauthorized         = 13
	codeAuthenticationFailed = 18
	codeNamespaceNotFound    = 26
)

// unavailableCodes are server errors that say "try again later": the
// server or its replica set is not in a state to serve us right now.
var unavailableCodes = []int{
	6,     // HostUnreachable
	7,     // HostNotFound
	89,    // NetworkTimeout
	91,    // ShutdownInProgress
	189,   // PrimarySteppedDown
	262,   // ExceededTimeLimit
	9001,  // SocketException
	10107, // NotWritablePrimary
	11600, // InterruptedAtShutdown
	11602, // InterruptedDueToReplStateChange
	13435, // NotPrimaryNoSecondaryOk
	13436, // NotPrimaryOrSecondary
}

// classify maps a driver error to an SDK sentinel, or nil when none fits.
// Once ctx is done its error wins: the operation was interrupted.
func classify(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var authErr *auth.Error
	if errors.As(err, &authErr) {
		return sdk.ErrUnauthenticated
	}
	var se mongo.ServerError
	if errors.As(err, &se) {
		switch {
		case se.HasErrorCode(codeAuthenticationFailed):
			return sdk.ErrUnauthenticated
		case se.HasErrorCode(codeUnauthorized):
			// Real MongoDB and FerretDB say "requires authentication" to
			// clients that did not log in, "not authorized" to users
			// lacking a privilege.
			if se.HasErrorMessage("requires authentication") || se.HasErrorMessage("not authenticated") {
				return sdk.ErrUnauthenticated
			}
			return sdk.ErrPermission
		case se.HasErrorCode(codeNamespaceNotFound):
			return sdk.ErrNotFound
		}
		for _, c := range unavailableCodes {
			if se.HasErrorCode(c) {
				return sdk.ErrUnavailable
			}
		}
		return nil
	}
	var sse topology.ServerSelectionError
	if errors.As(err, &sse) {
		// A handshake that failed to authenticate leaves the server
		// "Unknown" with the auth error as its last error.
		if msg := err.Error(); strings.Contains(msg, "auth error") || strings.Contains(msg, "AuthenticationFailed") {
			return sdk.ErrUnauthenticated
		}
		return sdk.ErrUnavailable
	}
	var ce topology.ConnectionError
	if errors.As(err, &ce) || mongo.IsNetworkError(err) || mongo.IsTimeout(err) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, mongo.ErrClientDisconnected) {
		return sdk.ErrUnavailable
	}
	return nil
}
