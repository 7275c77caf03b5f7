package mongodb

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/labelbackup/label-backup/sdk"
	"github.com/labelbackup/label-backup/sdk/containerenv"
)

// defaultPort is mongod's port unless its command line says otherwise.
const defaultPort = 27017

// targetConn parses t's connection, or when t has none, derives one from
// the container's environment the way the official image defines it. The
// dumper is native (no client tool), so there is no exec mode: the
// plugin always connects over the network.
func targetConn(ctx context.Context, t sdk.Target) (*connInfo, error) {
	switch mode := t.Options[sdk.OptionMode]; mode {
	case "", sdk.ModeNetwork:
	case sdk.ModeExec:
		return nil, fmt.Errorf("mongodb: exec mode is not supported: the dump is native and needs no client tool in the container; "+
			"remove backup.mode (the agent reaches the container over the network): %w", sdk.ErrUnsupported)
	default:
		return nil, fmt.Errorf("mongodb: unknown mode %q (network): %w", mode, sdk.ErrInvalidArgument)
	}
	if t.Connection != "" {
		return parseConn(t.Connection, t.Database)
	}
	conn, err := deriveConn(ctx, t)
	if err != nil {
		return nil, err
	}
	ci, err := parseConn(conn, t.Database)
	if err == nil && ci.opts.Auth == nil {
		ci.hint = "the server requires a login, but backup.conn is absent and the container sets no " +
			"MONGO_INITDB_ROOT_USERNAME/MONGO_INITDB_ROOT_PASSWORD (nor their _FILE variants): set them or the label backup.conn"
	}
	return ci, err
}

// deriveConn builds a URI from MONGO_INITDB_ROOT_USERNAME and
// MONGO_INITDB_ROOT_PASSWORD (or their _FILE variants, read inside the
// container), which the official image turns into a root user in the
// admin database. Without them the server runs without access control, so
// the URI carries no credentials. The host is the container's address
// (Options["host"]); the port is the one its command line or environment
// sets (commandPort), else 27017.
func deriveConn(ctx context.Context, t sdk.Target) (string, error) {
	env := t.ContainerEnv
	user, hasUser, err := containerenv.Lookup(ctx, env, "MONGO_INITDB_ROOT_USERNAME")
	if err != nil {
		return "", fmt.Errorf("mongodb: %w", err)
	}
	password, hasPassword, err := containerenv.Lookup(ctx, env, "MONGO_INITDB_ROOT_PASSWORD")
	if err != nil {
		return "", fmt.Errorf("mongodb: %w", err)
	}
	if hasUser != hasPassword || (hasUser && (user == "" || password == "")) {
		return "", fmt.Errorf("mongodb: no backup.conn, and the container's MONGO_INITDB_ROOT_USERNAME and MONGO_INITDB_ROOT_PASSWORD "+
			"(or their _FILE variants) are not both set: set both, or the label backup.conn: %w", sdk.ErrInvalidArgument)
	}
	host := t.Options[sdk.OptionHost]
	if host == "" {
		return "", fmt.Errorf("mongodb: no backup.conn, and the host could not tell the container's address: "+
			"set backup.conn: %w", sdk.ErrInvalidArgument)
	}
	port, err := commandPort(t.ContainerCommand, env)
	if err != nil {
		return "", err
	}
	u := url.URL{Scheme: "mongodb", Host: net.JoinHostPort(host, strconv.Itoa(port)), Path: "/"}
	if hasUser {
		u.User = url.UserPassword(user, password)
		u.RawQuery = "authSource=admin"
	}
	return u.String(), nil
}

// commandPort is the port the container's server listens on: mongod's
// --port N (or --port=N), FerretDB's --listen-addr host:port or its
// FERRETDB_LISTEN_ADDR variable, else defaultPort.
func commandPort(argv []string, env map[string]string) (int, error) {
	var v, from string
	if a := env["FERRETDB_LISTEN_ADDR"]; a != "" {
		v, from = a, "FERRETDB_LISTEN_ADDR"
	}
	for i, a := range argv {
		for _, flag := range []string{"--port", "--listen-addr"} {
			switch {
			case a == flag && i+1 < len(argv):
				v, from = argv[i+1], flag
			case strings.HasPrefix(a, flag+"="):
				v, from = a[len(flag)+1:], flag
			}
		}
	}
	if v == "" {
		return defaultPort, nil
	}
	if from != "--port" {
		_, p, err := net.SplitHostPort(v)
		if err != nil {
			return 0, fmt.Errorf("mongodb: the container's %s is %q, not host:port: %w", from, v, sdk.ErrInvalidArgument)
		}
		v = p
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("mongodb: the container's %s sets the port to %q, not a port number: %w", from, v, sdk.ErrInvalidArgument)
	}
	return n, nil
}
