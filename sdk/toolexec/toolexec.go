// Package toolexec runs an external dump or restore tool (pg_dump,
// mariadb-dump, ...) safely from a plugin: bound to a context, killed with
// its process group on cancel, killed when the plugin dies, with a bounded
// copy of its stderr in the returned error and secrets passed only through
// the environment and scrubbed from that error.
package toolexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/labelbackup/label-backup/sdk"
	"github.com/labelbackup/label-backup/sdk/internal/toolout"
)

// Command describes one run of an external tool.
type Command struct {
	// Path is the program to run; it is looked up in PATH when it has no
	// slash.
	Path string
	// Args are the arguments, without the program name. Never put secrets
	// here: every user of the machine can read a process's argv.
	Args []string
	// Env is added to a minimal base environment (PATH, HOME, LANG, TZ,
	// TMPDIR). Secrets go here, e.g. "PGPASSWORD=...".
	Env []string
	// Stdin, when set, is copied to the tool's standard input.
	Stdin io.Reader
	// Stdout receives the tool's standard output. When nil, output is
	// discarded.
	Stdout io.Writer
	// Secrets are scrubbed from the stderr text put into errors.
	Secrets []string
	// AllowEmptyOutput turns off the rule that a run which wrote nothing to
	// Stdout failed. Dumps must leave it false.
	AllowEmptyOutput bool
	// StderrLimit bounds the stderr kept for errors (default 16 KiB: the
	// first and last halves are kept).
	StderrLimit int
	// KillGrace is how long the tool gets between SIGTERM and SIGKILL after
	// cancellation (default 5 s).
	KillGrace time.Duration
}

// Result describes a finished run.
type Result struct {
	// StdoutBytes is how many bytes the tool wrote to stdout.
	StdoutBytes int64
	// Stderr is the kept part of the tool's stderr, scrubbed of secrets.
	Stderr string
}

// ExitError reports a tool that exited non-zero or was killed. It is the
// SDK's type, so tools run locally and through an sdk.Executor fail alike.
type ExitError = sdk.ExitError

// RunWith runs cmd through ex (a tool inside the database's container,
// see sdk.Exec) or, when ex is nil, locally with Run. Both ways have the
// same semantics and errors, so a plugin has one code path for both modes.
// Through an executor, Path is resolved in the container, Env is added to
// the container's environment and KillGrace does not apply.
func RunWith(ctx context.Context, ex sdk.Executor, cmd Command) (Result, error) {
	if ex == nil {
		return Run(ctx, cmd)
	}
	res, err := ex.Run(ctx, sdk.Command{
		Argv:             append([]string{cmd.Path}, cmd.Args...),
		Env:              cmd.Env,
		Stdin:            cmd.Stdin,
		Stdout:           cmd.Stdout,
		Secrets:          cmd.Secrets,
		AllowEmptyOutput: cmd.AllowEmptyOutput,
		StderrLimit:      cmd.StderrLimit,
	})
	return Result{StdoutBytes: res.StdoutBytes, Stderr: res.Stderr}, err
}

// Run runs cmd and waits for it. It fails when the tool cannot start, exits
// non-zero, is killed, writes nothing to Stdout (unless AllowEmptyOutput), or
// when writing to Stdout fails (the tool is then killed). When ctx is done
// the tool's whole process group gets SIGTERM, then SIGKILL after KillGrace.
func Run(ctx context.Context, cmd Command) (Result, error) {
	tool := toolout.BaseName(cmd.Path)
	limit := cmd.StderrLimit
	if limit <= 0 {
		limit = 16 << 10
	}
	grace := cmd.KillGrace
	if grace <= 0 {
		grace = 5 * time.Second
	}

	c := exec.Command(cmd.Path, cmd.Args...)
	c.Env = append(baseEnv(), cmd.Env...)
	c.Stdin = cmd.Stdin
	stderr := toolout.NewBounded(limit)
	c.Stderr = stderr
	out := &countingWriter{w: cmd.Stdout, failed: make(chan struct{})}
	if cmd.Stdout == nil {
		out.w = io.Discard
	}
	c.Stdout = out
	c.SysProcAttr = sysProcAttr()
	// Once the tool exits, don't wait forever for Stdin's reader or for a
	// grandchild that keeps the output pipes open.
	c.WaitDelay = grace

	if err := c.Start(); err != nil {
		return Result{}, fmt.Errorf("starting %s: %w", tool, err)
	}

	// Watch ctx ourselves instead of exec.CommandContext: we signal the
	// whole process group (tools may fork) and escalate after a grace period.
	done := make(chan struct{})
	killed := make(chan struct{})
	go func() {
		select {
		case <-done:
			return
		case <-ctx.Done():
			close(killed)
		case <-out.failed:
			// Our writer failed: a tool that is not writing right now
			// would never get SIGPIPE, so stop it like a cancelled one.
		}
		signalGroup(c.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(grace):
			signalGroup(c.Process.Pid, syscall.SIGKILL)
		}
	}()
	waitErr := c.Wait()
	close(done)

	res := Result{StdoutBytes: out.n, Stderr: toolout.Scrub(stderr.String(), cmd.Secrets)}
	select {
	case <-killed:
		return res, fmt.Errorf("%s cancelled: %w", tool, ctx.Err())
	default:
	}
	if out.err != nil {
		// The tool may have died of SIGPIPE because our writer failed: the
		// writer's error is the cause worth reporting.
		return res, fmt.Errorf("writing %s output: %w", tool, out.err)
	}
	if waitErr != nil {
		var ee *exec.ExitError
		if errors.As(waitErr, &ee) {
			xe := &ExitError{Tool: tool, ExitCode: ee.ExitCode(), Stderr: res.Stderr}
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				xe.Signal = ws.Signal().String()
			}
			return res, xe
		}
		return res, fmt.Errorf("running %s: %w", tool, waitErr)
	}
	if !cmd.AllowEmptyOutput && out.n == 0 {
		msg := fmt.Errorf("%s wrote no output: %w", tool, sdk.ErrEmptyDump)
		if s := strings.TrimSpace(res.Stderr); s != "" {
			msg = fmt.Errorf("%s wrote no output (stderr: %s): %w", tool, s, sdk.ErrEmptyDump)
		}
		return res, msg
	}
	return res, nil
}

// baseEnv is the environment every tool starts from: enough to run, nothing
// inherited that could carry another component's secrets.
func baseEnv() []string {
	env := []string{"PATH=" + envOr("PATH", "/usr/local/bin:/usr/bin:/bin")}
	for _, k := range []string{"HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// countingWriter counts bytes and remembers the first write error, so Run
// can tell "tool failed" from "our side stopped reading".
type countingWriter struct {
	w      io.Writer
	n      int64
	err    error
	failed chan struct{} // closed when err is set
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	if err != nil {
		c.err = err
		close(c.failed)
	}
	return n, err
}
