package mysql

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"

	"github.com/labelbackup/label-backup/sdk"
	"github.com/labelbackup/label-backup/sdk/toolexec"
)

// errorCodes map server and client error numbers to SDK sentinels.
var errorCodes = map[int]error{
	1045: sdk.ErrUnauthenticated, // access denied for user (using password: ...)
	1698: sdk.ErrUnauthenticated, // access denied (no password, unix_socket auth)
	1862: sdk.ErrUnauthenticated, // password expired, login refused

	1049: sdk.ErrNotFound, // unknown database

	1044: sdk.ErrPermission, // access denied for user to database
	1130: sdk.ErrPermission, // host is not allowed to connect
	1142: sdk.ErrPermission, // command denied on table
	1143: sdk.ErrPermission, // command denied on column
	1227: sdk.ErrPermission, // needs a privilege (SUPER, PROCESS, ...)
	1370: sdk.ErrPermission, // command denied on routine
	3118: sdk.ErrPermission, // account is locked (MySQL)
	4151: sdk.ErrPermission, // account is locked (MariaDB)

	1040: sdk.ErrUnavailable, // too many connections
	1053: sdk.ErrUnavailable, // server shutdown in progress
	1203: sdk.ErrUnavailable, // user has too many connections
	1226: sdk.ErrUnavailable, // user exceeded a resource limit
	1927: sdk.ErrUnavailable, // connection was killed
	2002: sdk.ErrUnavailable, // can't connect (socket, or TCP with a timeout)
	2003: sdk.ErrUnavailable, // can't connect (TCP)
	2005: sdk.ErrUnavailable, // unknown server host
	2006: sdk.ErrUnavailable, // server has gone away
	2013: sdk.ErrUnavailable, // lost connection during query
	2055: sdk.ErrUnavailable, // lost connection (system error)
}

// codePatterns find error numbers in the tools' messages:
//
//	ERROR 1045 (28000): Access denied ...              (client)
//	ERROR 1049 (42000) at line 3: Unknown database ... (client, scripts)
//	mariadb-dump: Got error: 1045: "Access denied ..." when trying to connect
//	mysqldump: Couldn't execute 'SHOW EVENTS': Access denied ... (1044)
var codePatterns = regexp.MustCompile(`(?m)\bERROR (\d{4,5})\b|Got error: (\d{4,5}):|\((\d{4,5})\)\s*$`)

// textClasses catch messages without a number, first match wins.
var textClasses = []struct {
	re  *regexp.Regexp
	err error
}{
	{regexp.MustCompile(`Access denied for user '[^']*'@'[^']*' \(using password`), sdk.ErrUnauthenticated},
	{regexp.MustCompile(`(?i)access denied; you need|access denied for user .* to database`), sdk.ErrPermission},
	{regexp.MustCompile(`(?i)can't connect to|lost connection to|server has gone away|unknown (mysql |mariadb )?server host|connection timed out|too many connections`), sdk.ErrUnavailable},
}

// classify adds the matching sentinel to a toolexec error, keeping the
// tool's (scrubbed) message so users see the reason.
func classify(err error) error {
	var xe *toolexec.ExitError
	if !errors.As(err, &xe) {
		return err
	}
	if s := sentinelFor(xe.Stderr); s != nil {
		return fmt.Errorf("%w: %w", s, err)
	}
	return err
}

// sentinelFor finds the sentinel for a tool's stderr: the first error
// number that has one, else the first matching message.
func sentinelFor(stderr string) error {
	for _, m := range codePatterns.FindAllStringSubmatch(stderr, -1) {
		for _, g := range m[1:] {
			if g == "" {
				continue
			}
			n, _ := strconv.Atoi(g)
			if s, ok := errorCodes[n]; ok {
				return s
			}
		}
	}
	for _, c := range textClasses {
		if c.re.MatchString(stderr) {
			return c.err
		}
	}
	return nil
}
