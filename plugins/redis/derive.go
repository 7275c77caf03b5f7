package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path"
	"strconv"
	"strings"

	"github.com/labelbackup/label-backup/sdk"
	"github.com/labelbackup/label-backup/sdk/containerenv"
	"github.com/labelbackup/label-backup/sdk/toolexec"
)

// Zero-config: with no backup.conn the connection is derived from what the
// host reports of the container (sdk.Target.ContainerEnv and
// ContainerCommand) the way the images define it. Redis itself needs no
// password by default, so finding none is not an error: the server is asked
// without one, and only its refusal (NOAUTH) is reported, naming every
// source that was looked at.

// srcCmdline names the command line as a source of a password.
const srcCmdline = "--requirepass in the container's command"

// derivation records where a derived connection came from, for errors.
type derivation struct {
	// passwordFrom names the source of the password; "" when none was
	// found.
	passwordFrom string
	// tried lists the sources looked at (and why one was unusable).
	tried []string
}

// maxConfigFile bounds what is read of a configuration file.
const maxConfigFile = 1 << 20

// deriveConn builds the connection to the container's own server. The
// password comes from, in this order: REDIS_PASSWORD or the file
// REDIS_PASSWORD_FILE names (the Bitnami images' variables), the
// --requirepass argument of redis-server in the container's command, the
// requirepass line of the configuration file given to redis-server as its
// first argument (read inside the container through the host's executor),
// or REDISCLI_AUTH. The user name of an ACL user comes from REDIS_USERNAME
// (or its _FILE form). The port comes from --port, else the configuration
// file's port, else REDIS_PORT_NUMBER (Bitnami), else 6379. In exec mode
// (inContainer) the server is reached on the container's loopback (or the
// address it binds to, when it binds to no loopback or wildcard address),
// else at the address the host reaches the container at (Options["host"]).
func deriveConn(ctx context.Context, t sdk.Target, inContainer bool) (*connInfo, error) {
	env := t.ContainerEnv
	sc := parseServerCommand(t.ContainerCommand)
	d := &derivation{}
	ci := &connInfo{port: defaultPort, derived: d}

	user, _, err := lookupEnv(ctx, env, "REDIS_USERNAME")
	if err != nil {
		return nil, err
	}
	pw, hasPw, err := lookupEnv(ctx, env, "REDIS_PASSWORD")
	if err != nil {
		return nil, err
	}
	d.tried = append(d.tried, "REDIS_PASSWORD", "REDIS_PASSWORD_FILE", srcCmdline)
	switch {
	case hasPw && pw != "":
		d.passwordFrom = "REDIS_PASSWORD"
		if _, isFile := env["REDIS_PASSWORD_FILE"]; isFile {
			d.passwordFrom = "the file REDIS_PASSWORD_FILE names"
		}
	case sc.requirepass != nil:
		// The command line overrides the configuration file; an empty
		// value there means no password.
		if *sc.requirepass != "" {
			pw, d.passwordFrom = *sc.requirepass, srcCmdline
		}
	}

	// The configuration file is read even when the password is known: it
	// may set the port. Reading it is best effort (it may be unreadable to
	// the container's user); only a server that then refuses the
	// connection makes a failure matter, and the error says why.
	var conf *serverConfig
	if sc.configFile != "" {
		var readErr error
		conf, readErr = readServerConfig(ctx, sc.configFile)
		src := "requirepass in " + sc.configFile
		switch {
		case readErr != nil:
			sdk.Logger(ctx).Debug("the server's configuration file is unreadable", "file", sc.configFile, "error", readErr.Error())
			src += fmt.Sprintf(" (unreadable: %v)", readErr)
		case d.passwordFrom == "" && sc.requirepass == nil && conf.requirepass != "":
			pw, d.passwordFrom = conf.requirepass, src
		}
		d.tried = append(d.tried, src)
	}
	// Last, the variable redis-cli itself reads (images set it for their
	// health checks): in exec mode redis-cli would use it anyway, so
	// network mode does too.
	d.tried = append(d.tried, "REDISCLI_AUTH")
	if v := env["REDISCLI_AUTH"]; d.passwordFrom == "" && v != "" {
		pw, d.passwordFrom = v, "REDISCLI_AUTH"
	}
	if d.passwordFrom != "" {
		ci.password, ci.hasAuth = pw, true
		ci.addSecret(pw)
	}
	if user != "" {
		if d.passwordFrom == "" {
			return nil, fmt.Errorf("redis: no backup.conn, and the container sets REDIS_USERNAME but no password was found for it "+
				"(looked at %s): set the label backup.conn: %w", strings.Join(d.tried, ", "), sdk.ErrInvalidArgument)
		}
		if strings.ContainsAny(user, " \t\r\n\x00") {
			return nil, fmt.Errorf("redis: the container's REDIS_USERNAME contains white space: %w", sdk.ErrInvalidArgument)
		}
		ci.user = user
	}

	port, portFrom := "", ""
	switch {
	case sc.port != "":
		port, portFrom = sc.port, "--port in the container's command"
	case conf != nil && conf.port != "":
		port, portFrom = conf.port, "port in "+sc.configFile
	case env["REDIS_PORT_NUMBER"] != "":
		port, portFrom = env["REDIS_PORT_NUMBER"], "REDIS_PORT_NUMBER"
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		switch {
		case err != nil || n < 0 || n > 65535:
			return nil, fmt.Errorf("redis: the container's %s is not a port number: %w", portFrom, sdk.ErrInvalidArgument)
		case n == 0:
			return nil, fmt.Errorf("redis: no backup.conn, and the server listens on no plain TCP port (%s is 0): "+
				"a TLS-only server or a Unix socket needs the label backup.conn: %w", portFrom, sdk.ErrInvalidArgument)
		}
		ci.port = n
	}

	if inContainer {
		binds := sc.bind
		if binds == nil && conf != nil {
			binds = conf.bind
		}
		ci.host = loopbackFor(binds)
	} else {
		ci.host = t.Options[sdk.OptionHost]
		if ci.host == "" {
			return nil, fmt.Errorf("redis: no backup.conn, and the host could not tell the container's address: "+
				"set backup.conn or backup.mode=exec: %w", sdk.ErrInvalidArgument)
		}
	}
	if t.Database != "" {
		db, err := parseDB(t.Database)
		if err != nil {
			return nil, fmt.Errorf("redis: invalid database %q: it must be a database index (0, 1, ...): %w", t.Database, sdk.ErrInvalidArgument)
		}
		ci.db, ci.dbGiven = db, true
	}
	return ci, nil
}

// lookupEnv reads NAME, or inside the container the file NAME_FILE names.
func lookupEnv(ctx context.Context, env map[string]string, name string) (string, bool, error) {
	v, ok, err := containerenv.Lookup(ctx, env, name)
	if err != nil {
		return "", false, fmt.Errorf("redis: %w", err)
	}
	return v, ok, nil
}

// explainAuth adds to an authentication failure of a derived connection
// where its password came from, or that none was found.
func (ci *connInfo) explainAuth(err error) error {
	d := ci.derived
	if d == nil || !errors.Is(err, sdk.ErrUnauthenticated) {
		return err
	}
	if d.passwordFrom == "" {
		return fmt.Errorf("redis: the server requires a password, but no backup.conn is set and no password is discoverable "+
			"in the container (looked at %s): set the label backup.conn (redis://:PASSWORD@HOST:PORT): %w",
			strings.Join(d.tried, ", "), err)
	}
	return fmt.Errorf("redis: the server refused the password taken from %s (no backup.conn is set): %w", d.passwordFrom, err)
}

// serverCommand is what the container's command tells of redis-server.
type serverCommand struct {
	found       bool   // redis-server was recognised in the command
	configFile  string // its first argument, when that is not an option
	requirepass *string
	port        string
	bind        []string
}

// parseServerCommand reads the arguments of redis-server in the container's
// entrypoint and command: the first argument is a configuration file unless
// it starts with "-"; then come "--name value..." options, each a line the
// server appends to that file. Only a plain exec form is understood, not a
// shell command line ("sh -c 'redis-server ...'"). The official image's
// entrypoint, given a command starting with "-" or ending in ".conf",
// runs redis-server with it: that form is recognised too.
func parseServerCommand(cmd []string) serverCommand {
	var sc serverCommand
	var args []string
	for i, a := range cmd {
		if path.Base(a) == "redis-server" {
			args, sc.found = cmd[i+1:], true
			break
		}
	}
	if !sc.found && len(cmd) >= 2 && path.Base(cmd[0]) == "docker-entrypoint.sh" &&
		(strings.HasPrefix(cmd[1], "-") || strings.HasSuffix(cmd[1], ".conf")) {
		args, sc.found = cmd[1:], true
	}
	if !sc.found {
		return sc
	}
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sc.configFile = args[0]
		args = args[1:]
	}
	var name string
	var vals []string
	flush := func() {
		switch name {
		case "requirepass":
			v := ""
			if len(vals) > 0 {
				v = vals[0]
			}
			sc.requirepass = &v
		case "port":
			if len(vals) > 0 {
				sc.port = vals[0]
			}
		case "bind":
			sc.bind = vals
		}
	}
	for _, a := range args {
		if strings.HasPrefix(a, "--") && len(a) > 2 {
			flush()
			name, vals = strings.ToLower(a[2:]), nil
			continue
		}
		vals = append(vals, a)
	}
	flush()
	return sc
}

// serverConfig is what a configuration file tells.
type serverConfig struct {
	requirepass string
	port        string
	bind        []string
}

// readServerConfig reads a configuration file inside the container with
// the host's executor (which the host offers whenever the connection is
// derived) and takes its last requirepass, port and bind lines. include
// directives are not followed.
func readServerConfig(ctx context.Context, file string) (*serverConfig, error) {
	ex, ok := sdk.Exec(ctx)
	if !ok {
		return nil, fmt.Errorf("the host offers no exec service to read it: %w", sdk.ErrUnsupported)
	}
	out := &toolexec.CappedBuffer{Limit: maxConfigFile}
	if _, err := toolexec.RunWith(ctx, ex, toolexec.Command{
		Path: "cat", Args: []string{"--", file}, Stdout: out, AllowEmptyOutput: true,
	}); err != nil {
		return nil, err
	}
	return parseServerConfig(out.String()), nil
}

// parseServerConfig reads redis.conf lines: a directive and its arguments,
// split and unquoted as the server does.
func parseServerConfig(text string) *serverConfig {
	c := &serverConfig{}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		args, ok := splitConfigArgs(line)
		if !ok || len(args) < 2 {
			continue
		}
		switch strings.ToLower(args[0]) {
		case "requirepass":
			c.requirepass = args[1]
		case "port":
			c.port = args[1]
		case "bind":
			c.bind = args[1:]
		}
	}
	return c
}

// splitConfigArgs splits a configuration line the way Redis's sdssplitargs
// does: words separated by white space; "double quotes" with \n \r \t \b
// \a, \xHH and \<char> escapes; 'single quotes' with \' only. A quote
// may start inside a word, and a closing quote must end it. ok is false
// for a line the server would refuse (unbalanced quotes).
func splitConfigArgs(line string) (args []string, ok bool) {
	i := 0
	for {
		for i < len(line) && strings.IndexByte(" \t\r\n\v\f", line[i]) >= 0 {
			i++
		}
		if i == len(line) {
			return args, true
		}
		var word []byte
		inDouble, inSingle := false, false
		for done := false; !done; {
			switch {
			case inDouble:
				if i == len(line) {
					return nil, false
				}
				switch c := line[i]; {
				case c == '\\' && i+3 < len(line) && line[i+1] == 'x' && isHex(line[i+2]) && isHex(line[i+3]):
					v, _ := strconv.ParseUint(line[i+2:i+4], 16, 8)
					word = append(word, byte(v))
					i += 3
				case c == '\\' && i+1 < len(line):
					i++
					word = append(word, unescape(line[i]))
				case c == '"':
					if i+1 < len(line) && !isWordEnd(line[i+1]) {
						return nil, false
					}
					done = true
				default:
					word = append(word, c)
				}
			case inSingle:
				if i == len(line) {
					return nil, false
				}
				switch c := line[i]; {
				case c == '\\' && i+1 < len(line) && line[i+1] == '\'':
					i++
					word = append(word, '\'')
				case c == '\'':
					if i+1 < len(line) && !isWordEnd(line[i+1]) {
						return nil, false
					}
					done = true
				default:
					word = append(word, c)
				}
			default:
				if i == len(line) || isWordEnd(line[i]) {
					done = true
					break
				}
				switch c := line[i]; c {
				case '"':
					inDouble = true
				case '\'':
					inSingle = true
				default:
					word = append(word, c)
				}
			}
			if i < len(line) {
				i++
			}
		}
		args = append(args, string(word))
	}
}

func isWordEnd(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// unescape is the byte a backslash escape inside double quotes stands for.
func unescape(c byte) byte {
	switch c {
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	case 'b':
		return '\b'
	case 'a':
		return '\a'
	}
	return c
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// loopbackFor is the address to reach, from inside the container, a server
// that binds to binds (nil: Redis's default, every interface): the IPv4
// loopback when the server listens there or on every interface, else the
// IPv6 one, else the first address it binds to.
func loopbackFor(binds []string) string {
	if len(binds) == 0 {
		return "127.0.0.1"
	}
	has := func(addrs ...string) bool {
		for _, b := range binds {
			b = strings.TrimPrefix(b, "-") // "-addr": optional, skipped if unavailable
			for _, a := range addrs {
				if strings.EqualFold(b, a) {
					return true
				}
			}
		}
		return false
	}
	switch {
	case has("127.0.0.1", "*", "0.0.0.0", "localhost"):
		return "127.0.0.1"
	case has("::1", "::*", "::"):
		return "::1"
	}
	first := strings.TrimPrefix(binds[0], "-")
	if net.ParseIP(first) == nil {
		return "127.0.0.1"
	}
	return first
}
