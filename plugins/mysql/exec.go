package mysql

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/labelbackup/label-backup/sdk"
	"github.com/labelbackup/label-backup/sdk/containerenv"
	"github.com/labelbackup/label-backup/sdk/toolexec"
)

// Exec mode (Target.Options["mode"]="exec"): the tools run inside the
// database's container through the host's executor (sdk.Exec). There is
// no option file there: user, host, port and TLS settings go to argv (the
// container's own processes), the password only to MYSQL_PWD in the
// tool's environment, which both MariaDB's and MySQL's tools read.

// prepare decides how to reach t: locally or in the container (ex is nil
// for local tools), with t.Connection or, when that is empty, a
// connection derived from the container's environment.
func (p *Plugin) prepare(ctx context.Context, t sdk.Target) (*connInfo, sdk.Executor, error) {
	ex, err := sdk.ModeExecutor(ctx, t)
	if err != nil {
		return nil, nil, fmt.Errorf("mysql: %w", err)
	}
	if t.Connection != "" {
		ci, err := parseConn(t.Connection, t.Database)
		return ci, ex, err
	}
	ci, err := deriveConn(ctx, t, ex)
	return ci, ex, err
}

// toolConn is how one tool run connects: the option file locally, or
// argv and MYSQL_PWD in the container.
type toolConn struct {
	defaultsArg string
	connArgs    []string
	env         []string
}

// args puts the connection in front of args built for a defaults file
// (whose first element is that file's argument).
func (c *toolConn) args(args []string) []string {
	if c.connArgs == nil {
		return append([]string{c.defaultsArg}, args[1:]...)
	}
	return append(slices.Clone(c.connArgs), args[1:]...)
}

// connect readies one run of a tool of kind k and flavor f.
func (p *Plugin) connect(ci *connInfo, f flavor, k toolKind, ex sdk.Executor) (*toolConn, func(), error) {
	if ex == nil {
		rf, cleanup, err := ci.newRunFiles(f)
		if err != nil {
			return nil, cleanup, err
		}
		return &toolConn{defaultsArg: rf.defaultsArg(), env: rf.env()}, cleanup, nil
	}
	c := &toolConn{connArgs: ci.execArgs(f, k)}
	if ci.hasPassword {
		c.env = []string{"MYSQL_PWD=" + ci.password}
	}
	return c, func() {}, nil
}

// execArgs are the connection options on a tool's command line in exec
// mode: everything of the connection but the password.
func (ci *connInfo) execArgs(f flavor, k toolKind) []string {
	var a []string
	if ci.user != "" {
		a = append(a, "--user="+ci.user)
	}
	if ci.socket {
		a = append(a, "--protocol=SOCKET")
	} else {
		a = append(a, "--host="+ci.host, "--port="+strconv.Itoa(ci.port), "--protocol=TCP")
	}
	for _, o := range []struct{ name, v string }{{"ssl-ca", ci.tls.ca}, {"ssl-cert", ci.tls.cert}, {"ssl-key", ci.tls.key}} {
		if o.v != "" {
			a = append(a, "--"+o.name+"="+o.v)
		}
	}
	for _, l := range tlsModeLines(f, ci.tls.mode) {
		a = append(a, "--"+l)
	}
	if k == clientTool {
		a = append(a, "--connect-timeout="+strconv.Itoa(ci.connectTimeout))
	}
	if k == dumpTool && f == flavorMySQL {
		a = append(a, "--loose-column-statistics=0")
	}
	return a
}

// toolFor finds a tool of kind k: locally, or in the container by asking
// each candidate for its version there.
func (p *Plugin) toolFor(ctx context.Context, ex sdk.Executor, k toolKind) (string, flavor, error) {
	if ex == nil {
		return p.tool(ctx, k)
	}
	names := toolNames[k]
	for _, name := range names {
		var out bytes.Buffer
		_, err := toolexec.RunWith(ctx, ex, toolexec.Command{Path: name, Args: []string{"--version"}, Stdout: &out})
		var xe *toolexec.ExitError
		if errors.As(err, &xe) && (xe.ExitCode == 126 || xe.ExitCode == 127) {
			continue // not in this container
		}
		if err != nil {
			return "", 0, fmt.Errorf("asking %s in the container for its version: %w", name, err)
		}
		f := flavorMySQL
		if strings.HasPrefix(name, "mariadb") || strings.Contains(out.String(), "MariaDB") {
			f = flavorMariaDB
		}
		return name, f, nil
	}
	return "", 0, fmt.Errorf("neither %s nor %s found in the database container: %w", names[0], names[1], sdk.ErrNotFound)
}

// deriveConn builds the connection from the official images' variables,
// MARIADB_* first, then MYSQL_*, each also as a _FILE variant read inside
// the container: the root password, else the application user's, else
// root without a password when the image was told to allow it. In exec
// mode it connects over the container's Unix socket, else to the host the
// agent reaches the container at (Options["host"]) on MYSQL_TCP_PORT or
// 3306.
func deriveConn(ctx context.Context, t sdk.Target, ex sdk.Executor) (*connInfo, error) {
	env := t.ContainerEnv
	get := func(suffix string) (string, bool, error) {
		for _, prefix := range []string{"MARIADB_", "MYSQL_"} {
			v, ok, err := containerenv.Lookup(ctx, env, prefix+suffix)
			if err != nil {
				return "", false, fmt.Errorf("mysql: %w", err)
			}
			if ok {
				return v, true, nil
			}
		}
		return "", false, nil
	}
	rootPw, hasRoot, err := get("ROOT_PASSWORD")
	if err != nil {
		return nil, err
	}
	user, hasUser, err := get("USER")
	if err != nil {
		return nil, err
	}
	userPw, hasUserPw, err := get("PASSWORD")
	if err != nil {
		return nil, err
	}
	db, _, err := get("DATABASE")
	if err != nil {
		return nil, err
	}
	allowEmpty := env["MARIADB_ALLOW_EMPTY_ROOT_PASSWORD"] != "" || env["MYSQL_ALLOW_EMPTY_PASSWORD"] != ""

	ci := &connInfo{port: defaultPort, connectTimeout: defaultConnectTimeout}
	switch {
	case hasRoot && rootPw != "":
		ci.user, ci.password, ci.hasPassword = "root", rootPw, true
	case hasUser && user != "" && hasUserPw:
		ci.user, ci.password, ci.hasPassword = user, userPw, true
	case allowEmpty:
		ci.user = "root"
	default:
		return nil, fmt.Errorf("mysql: no backup.conn and no usable credentials in the container's environment: "+
			"it sets none of MARIADB_ROOT_PASSWORD/MYSQL_ROOT_PASSWORD (or their _FILE variants), "+
			"MARIADB_USER+MARIADB_PASSWORD/MYSQL_USER+MYSQL_PASSWORD, or MARIADB_ALLOW_EMPTY_ROOT_PASSWORD/MYSQL_ALLOW_EMPTY_PASSWORD "+
			"(a MYSQL_RANDOM_ROOT_PASSWORD is known to no one); set them or the label backup.conn: %w", sdk.ErrInvalidArgument)
	}
	ci.addSecret(ci.password)
	ci.database = db
	if t.Database != "" {
		ci.database = t.Database
	}
	if err := checkDatabaseName(ci.database); err != nil {
		return nil, err
	}
	if ex != nil {
		ci.socket = true
		return ci, nil
	}
	ci.host = t.Options[sdk.OptionHost]
	if ci.host == "" {
		return nil, fmt.Errorf("mysql: no backup.conn, and the host could not tell the container's address: "+
			"set backup.conn or backup.mode=exec: %w", sdk.ErrInvalidArgument)
	}
	if port := env["MYSQL_TCP_PORT"]; port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("mysql: the container's MYSQL_TCP_PORT is not a port number: %w", sdk.ErrInvalidArgument)
		}
		ci.port = n
	}
	return ci, nil
}
