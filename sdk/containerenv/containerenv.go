// Package containerenv reads the credentials a database container's
// official image takes from its environment, for plugins that derive a
// connection when the label backup.conn is absent (sdk.Target.ContainerEnv).
package containerenv

import (
	"context"
	"fmt"
	"strings"

	"github.com/labelbackup/label-backup/sdk"
	"github.com/labelbackup/label-backup/sdk/toolexec"
)

// maxSecretFile bounds what is read of a secret file: a password, not a
// database.
const maxSecretFile = 64 << 10

// Lookup returns the variable name of env or, the way the official images'
// entrypoints do, the contents of the file that name_FILE names, without
// its trailing newline. The file lives inside the database container, so
// it is read there through the host's executor (sdk.Exec), which the host
// offers whenever it hands a plugin the container's environment. ok
// reports whether either variable is set. Setting both is an error, as it
// is for the images.
func Lookup(ctx context.Context, env map[string]string, name string) (value string, ok bool, err error) {
	v, hasV := env[name]
	file, hasFile := env[name+"_FILE"]
	switch {
	case hasV && hasFile:
		return "", false, fmt.Errorf("the container sets both %s and %s_FILE: %w", name, name, sdk.ErrInvalidArgument)
	case hasV:
		return v, true, nil
	case !hasFile:
		return "", false, nil
	}
	ex, canExec := sdk.Exec(ctx)
	if !canExec {
		return "", false, fmt.Errorf("the container sets %s_FILE, a file only readable inside the container, "+
			"and the host offers no exec service to read it: %w", name, sdk.ErrUnsupported)
	}
	out := &toolexec.CappedBuffer{Limit: maxSecretFile}
	if _, err := toolexec.RunWith(ctx, ex, toolexec.Command{Path: "cat", Args: []string{"--", file}, Stdout: out}); err != nil {
		return "", false, fmt.Errorf("reading %s_FILE in the container: %w", name, err)
	}
	return strings.TrimRight(out.String(), "\r\n"), true, nil
}
