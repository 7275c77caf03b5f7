package redis

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/labelbackup/label-backup/plugins/redis/internal/resp"
	"github.com/labelbackup/label-backup/sdk"
)

// classifyReply maps an error reply to an SDK sentinel, or nil.
//
//   - AUTH failing for any reason, WRONGPASS and NOAUTH (a command sent
//     without the required AUTH) are ErrUnauthenticated;
//   - NOPERM (an ACL user without the right to run the command) and DENIED
//     (protected mode) are ErrPermission;
//   - LOADING, BUSY, MASTERDOWN, NOMASTERLINK (a replica cut off from its
//     master refuses SYNC), TRYAGAIN and "max number of clients" are
//     ErrUnavailable: the same call may work later.
func classifyReply(cmd, code, msg string) error {
	switch code {
	case "WRONGPASS", "NOAUTH":
		return sdk.ErrUnauthenticated
	case "NOPERM", "DENIED":
		return sdk.ErrPermission
	case "LOADING", "BUSY", "MASTERDOWN", "NOMASTERLINK", "TRYAGAIN", "CLUSTERDOWN":
		return sdk.ErrUnavailable
	}
	switch {
	case strings.Contains(msg, "max number of clients reached"):
		return sdk.ErrUnavailable
	case cmd == "AUTH":
		// Older servers: "-ERR invalid password", "-ERR invalid
		// username-password pair", or AUTH with a user name on Redis 5.
		return sdk.ErrUnauthenticated
	case strings.Contains(msg, "Can't SYNC while not connected with my master"):
		return sdk.ErrUnavailable
	}
	return nil
}

// classifyNet wraps a failure of the connection with ErrUnavailable when it
// is transient: refused, reset, timed out, unresolvable, closed early. TLS
// verification failures are not transient and keep no sentinel. A failure
// caused by ctx being done reports ctx's error.
func classifyNet(ctx context.Context, ci *connInfo, op string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("redis: %s: %s: %w", ci.where(), op, ctx.Err())
	}
	var (
		certInvalid  x509.CertificateInvalidError
		unknownAuth  x509.UnknownAuthorityError
		hostname     x509.HostnameError
		verification *tls.CertificateVerificationError
		recordHeader tls.RecordHeaderError
		protoErr     *resp.ProtocolError
	)
	switch {
	case errors.As(err, &certInvalid), errors.As(err, &unknownAuth), errors.As(err, &hostname),
		errors.As(err, &verification), errors.As(err, &recordHeader):
		return fmt.Errorf("redis: %s: %s: %w", ci.where(), op, err)
	case errors.As(err, &protoErr), errors.Is(err, resp.ErrLineTooLong):
		return fmt.Errorf("redis: %s: %s: %w (is this a Redis server?)", ci.where(), op, err)
	}
	if isTransient(err) {
		return fmt.Errorf("redis: %s: %s: %w: %w", ci.where(), op, sdk.ErrUnavailable, err)
	}
	return fmt.Errorf("redis: %s: %s: %w", ci.where(), op, err)
}

func isTransient(err error) bool {
	var dnsErr *net.DNSError
	var netErr net.Error
	switch {
	case errors.As(err, &dnsErr),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, syscall.ETIMEDOUT), errors.Is(err, os.ErrDeadlineExceeded),
		errors.Is(err, context.DeadlineExceeded), // our own timeouts (the caller's ctx is not done)
		errors.Is(err, net.ErrClosed):
		return true
	case errors.As(err, &netErr) && netErr.Timeout():
		return true
	}
	return false
}
