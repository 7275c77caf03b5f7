package sdktest

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"time"

	"github.com/labelbackup/label-backup/sdk"
)

// LocalExec is an sdk.ExecHandler that stands in for the host's Docker
// exec: it runs each command as a local process, so that a plugin's exec
// mode can be tested without Docker. Put it in the context of the client
// calls with sdk.WithExecHandler; the plugin then reaches it through the
// real broker, exactly as it reaches the host's.
//
// Env is the environment of every command (the "container's"), with the
// command's own entries added; Dir is its working directory. A command
// is killed when the call's context is done, as the host stops a cancelled
// exec.
type LocalExec struct {
	Env []string
	Dir string
}

var _ sdk.ExecHandler = (*LocalExec)(nil)

// Exec runs spec.Argv and returns its exit code; a program that cannot be
// started is exit code 127, as in a shell.
func (l *LocalExec) Exec(ctx context.Context, spec sdk.ExecSpec, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	if len(spec.Argv) == 0 {
		return -1, errors.New("sdktest: exec of an empty command")
	}
	cmd := exec.CommandContext(ctx, spec.Argv[0], spec.Argv[1:]...)
	cmd.Env = append(append([]string{"PATH=" + os.Getenv("PATH")}, l.Env...), spec.Env...)
	cmd.Dir = l.Dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		_, _ = io.WriteString(stderr, err.Error())
		return 127, nil
	}
	err := cmd.Wait()
	if ctx.Err() != nil {
		return -1, ctx.Err()
	}
	var xe *exec.ExitError
	if errors.As(err, &xe) {
		return xe.ExitCode(), nil
	}
	if err != nil {
		return -1, err
	}
	return 0, nil
}
