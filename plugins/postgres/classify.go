package postgres

import (
	"errors"
	"fmt"
	"os/exec"
	"regexp"

	"github.com/labelbackup/label-backup/sdk"
	"github.com/labelbackup/label-backup/sdk/toolexec"
)

// errorClasses map libpq and server messages in a tool's stderr to SDK
// sentinels, first match wins. Only connection-level (FATAL or client-side)
// messages count for authentication and missing databases: during a
// restore, `ERROR:  role "x" does not exist` is a statement failing, not a
// login.
var errorClasses = []struct {
	re  *regexp.Regexp
	err error
}{
	{regexp.MustCompile(`authentication failed for user|no password supplied|FATAL:\s+role "[^"]*" does not exist`), sdk.ErrUnauthenticated},
	{regexp.MustCompile(`FATAL:\s+database "[^"]*" does not exist`), sdk.ErrNotFound},
	{regexp.MustCompile(`permission denied|no pg_hba\.conf entry|pg_hba\.conf rejects connection|must be owner of`), sdk.ErrPermission},
	{regexp.MustCompile(`(?i)connection refused|could not connect|timeout expired|could not translate host name|no route to host|network is unreachable|connection timed out|server closed the connection unexpectedly|the database system is (starting up|shutting down|in recovery mode)|too many clients already|remaining connection slots are reserved`), sdk.ErrUnavailable},
}

// classify adds the matching sentinel to a toolexec error, keeping the
// tool's (scrubbed) message so users see the reason.
func classify(err error) error {
	if errors.Is(err, exec.ErrNotFound) {
		return fmt.Errorf("%w (install the PostgreSQL client tools or set the bin_dir option)", err)
	}
	var xe *toolexec.ExitError
	if !errors.As(err, &xe) {
		return err
	}
	for _, c := range errorClasses {
		if c.re.MatchString(xe.Stderr) {
			return fmt.Errorf("%w: %w", c.err, err)
		}
	}
	return err
}
