package postgres

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/labelbackup/label-backup/sdk"
	"github.com/labelbackup/label-backup/sdk/containerenv"
)

// socketDir is where libpq and the official images keep the server's Unix
// socket inside a database container.
const socketDir = "/var/run/postgresql"

// prepare decides how to reach t: through the host's executor inside the
// database container (Options["mode"]="exec") or with local tools, and
// with which connection, taken from t.Connection or, when that is empty,
// derived from the container's environment as the official image defines
// it. ex is nil for local tools.
func (p *Plugin) prepare(ctx context.Context, t sdk.Target) (ci *connInfo, ex sdk.Executor, err error) {
	ex, err = sdk.ModeExecutor(ctx, t)
	if err != nil {
		return nil, nil, fmt.Errorf("postgres: %w", err)
	}
	conn := t.Connection
	derived := conn == ""
	if derived {
		if conn, err = deriveConn(ctx, t, ex); err != nil {
			return nil, nil, err
		}
	}
	if ci, err = parseConn(conn, t.Database); err != nil {
		return nil, nil, err
	}
	if derived && ex != nil {
		ci.hosts = []string{"the container's Unix socket"} // for logs and errors
	}
	if ex != nil && ci.sslPassword != "" {
		return nil, nil, fmt.Errorf("postgres: sslpassword is not supported in exec mode: %w", sdk.ErrUnsupported)
	}
	return ci, ex, nil
}

// toolFor is the tool to run: in the container's PATH through an executor,
// else in bin_dir or PATH.
func (p *Plugin) toolFor(ex sdk.Executor, name string) string {
	if ex != nil {
		return name
	}
	return p.tool(name)
}

// deriveConn builds a connection URI from the container's POSTGRES_USER,
// POSTGRES_PASSWORD and POSTGRES_DB (or their _FILE variants, read inside
// the container in exec mode). In exec mode it connects over the
// container's Unix socket, else to the host the agent reaches the
// container at (Options["host"]) on PGPORT or 5432.
func deriveConn(ctx context.Context, t sdk.Target, ex sdk.Executor) (string, error) {
	env := t.ContainerEnv
	user, err := envOrFile(ctx, env, "POSTGRES_USER")
	if err != nil {
		return "", err
	}
	password, err := envOrFile(ctx, env, "POSTGRES_PASSWORD")
	if err != nil {
		return "", err
	}
	db, err := envOrFile(ctx, env, "POSTGRES_DB")
	if err != nil {
		return "", err
	}
	trust := strings.EqualFold(env["POSTGRES_HOST_AUTH_METHOD"], "trust")
	if password == "" && !trust {
		return "", fmt.Errorf("postgres: no backup.conn and no usable credentials in the container's environment: "+
			"it sets neither POSTGRES_PASSWORD nor POSTGRES_PASSWORD_FILE (nor POSTGRES_HOST_AUTH_METHOD=trust); "+
			"set one of them or the label backup.conn: %w", sdk.ErrInvalidArgument)
	}
	if user == "" {
		user = "postgres"
	}
	if db == "" {
		db = user
	}
	u := url.URL{Scheme: "postgresql", Path: "/" + db}
	if password != "" {
		u.User = url.UserPassword(user, password)
	} else {
		u.User = url.User(user)
	}
	q := url.Values{}
	if ex != nil {
		q.Set("host", socketDir)
	} else {
		host := t.Options[sdk.OptionHost]
		if host == "" {
			return "", fmt.Errorf("postgres: no backup.conn, and the host could not tell the container's address: "+
				"set backup.conn or backup.mode=exec: %w", sdk.ErrInvalidArgument)
		}
		port := env["PGPORT"]
		if port == "" {
			port = "5432"
		}
		u.Host = host + ":" + port
		q.Set("sslmode", "prefer")
	}
	if p := env["PGPORT"]; p != "" && ex != nil {
		q.Set("port", p)
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// envOrFile reads NAME, or the file NAME_FILE names inside the container,
// like the official image's entrypoint.
func envOrFile(ctx context.Context, env map[string]string, name string) (string, error) {
	v, _, err := containerenv.Lookup(ctx, env, name)
	if err != nil {
		return "", fmt.Errorf("postgres: %w", err)
	}
	return v, nil
}
