package toolexec

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/labelbackup/label-backup/sdk"
	"github.com/labelbackup/label-backup/sdk/internal/toolout"
)

// The tests here run real processes: small /bin/sh scripts stand in for
// pg_dump and friends. They are deliberately not parallel: writing an
// executable while another goroutine forks can fail with ETXTBSY.

// script writes an executable /bin/sh script named name into a fresh
// directory and returns its path.
func script(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// testCtx is a context that outlives any sane test but stops a runaway
// tool eventually.
func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// waitFile waits until path exists and is non-empty, and returns its
// contents.
func waitFile(t *testing.T, path string, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		b, err := os.ReadFile(path)
		if err == nil && len(bytes.TrimSpace(b)) > 0 {
			return strings.TrimSpace(string(b))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear within %v (err %v)", path, within, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// processGone reports whether pid no longer runs. A zombie counts as gone:
// it was killed, and PID 1 in a container may never reap it.
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return errors.Is(err, fs.ErrNotExist)
	}
	// Format: pid (comm) state ...; comm may contain spaces and parens.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] == 'Z' || s[i+2] == 'X'
	}
	return false
}

// assertGone waits briefly for pid to die.
func assertGone(t *testing.T, what string, pid int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !processGone(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("%s (pid %d) still running after Run returned", what, pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRunStreamsStdout(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 64<<10) // 1 MiB, more than a pipe buffer
	cases := []struct {
		name  string
		body  string
		stdin io.Reader
		want  string
	}{
		{"small", `printf 'hello dump'`, nil, "hello dump"},
		{"binary", `printf '\000\001\377\n\000'`, nil, "\x00\x01\xff\n\x00"},
		{"many writes", `i=0; while [ $i -lt 500 ]; do echo "line $i"; i=$((i+1)); done`, nil, func() string {
			var b strings.Builder
			for i := range 500 {
				b.WriteString("line " + strconv.Itoa(i) + "\n")
			}
			return b.String()
		}()},
		{"stdin copied through", `cat`, strings.NewReader(big), big},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			res, err := Run(testCtx(t, 20*time.Second), Command{
				Path:   script(t, "fake-dump", tc.body),
				Stdin:  tc.stdin,
				Stdout: &out,
			})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if out.String() != tc.want {
				t.Errorf("stdout = %d bytes %.40q, want %d bytes %.40q", out.Len(), out.String(), len(tc.want), tc.want)
			}
			if res.StdoutBytes != int64(len(tc.want)) {
				t.Errorf("StdoutBytes = %d, want %d", res.StdoutBytes, len(tc.want))
			}
		})
	}
}

func TestRunNilStdoutDiscardsButCounts(t *testing.T) {
	res, err := Run(testCtx(t, 10*time.Second), Command{Path: script(t, "tool", `printf '12345'`)})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.StdoutBytes != 5 {
		t.Errorf("StdoutBytes = %d, want 5", res.StdoutBytes)
	}
}

func TestRunStartFailure(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-tool")
	_, err := Run(testCtx(t, 10*time.Second), Command{Path: missing})
	if err == nil {
		t.Fatal("running a missing program succeeded")
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("err = %v, want it to wrap fs.ErrNotExist", err)
	}
	var xe *ExitError
	if errors.As(err, &xe) {
		t.Errorf("a start failure is reported as an ExitError: %v", err)
	}
}

func TestRunExitError(t *testing.T) {
	const secret = "s3cr3t-Pa55"
	cases := []struct {
		name       string
		body       string
		secrets    []string
		wantCode   int
		wantSignal string
		wantIn     []string
		wantNotIn  []string
	}{
		{
			name:     "exit code and stderr",
			body:     `echo partial; echo 'pg_dump: error: connection refused' >&2; exit 3`,
			wantCode: 3,
			wantIn:   []string{"fake-dump exited with status 3", "pg_dump: error: connection refused"},
		},
		{
			name:      "secret scrubbed",
			body:      `echo "FATAL: password authentication failed (password ` + secret + `)" >&2; echo "dsn=postgres://u:` + secret + `@db/x" >&2; exit 1`,
			secrets:   []string{secret},
			wantCode:  1,
			wantIn:    []string{"FATAL: password authentication failed (password ***)", "postgres://u:***@db/x"},
			wantNotIn: []string{secret},
		},
		{
			name:      "every secret scrubbed",
			body:      `echo "user=alice-admin pass=` + secret + `" >&2; exit 2`,
			secrets:   []string{"alice-admin", secret},
			wantCode:  2,
			wantIn:    []string{"user=*** pass=***"},
			wantNotIn: []string{secret, "alice-admin"},
		},
		{
			// A secret that contains another must not leak its remainder.
			name:      "overlapping secrets",
			body:      `echo "token hunter2-long-tail-secret" >&2; exit 4`,
			secrets:   []string{"hunter2", "hunter2-long-tail-secret"},
			wantCode:  4,
			wantIn:    []string{"token ***"},
			wantNotIn: []string{"hunter2", "long-tail-secret"},
		},
		{
			name:     "empty secret ignored",
			body:     `echo 'plain failure' >&2; exit 5`,
			secrets:  []string{""},
			wantCode: 5,
			wantIn:   []string{"plain failure"},
		},
		{
			name:       "killed by a signal",
			body:       `echo dying >&2; kill -KILL $$`,
			wantCode:   -1,
			wantSignal: syscall.SIGKILL.String(),
			wantIn:     []string{"fake-dump killed by " + syscall.SIGKILL.String(), "dying"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Run(testCtx(t, 10*time.Second), Command{
				Path:    script(t, "fake-dump", tc.body),
				Stdout:  io.Discard,
				Secrets: tc.secrets,
			})
			var xe *ExitError
			if !errors.As(err, &xe) {
				t.Fatalf("err = %v (%T), want *ExitError", err, err)
			}
			if xe.Tool != "fake-dump" {
				t.Errorf("Tool = %q, want the program's base name", xe.Tool)
			}
			if xe.ExitCode != tc.wantCode {
				t.Errorf("ExitCode = %d, want %d", xe.ExitCode, tc.wantCode)
			}
			if xe.Signal != tc.wantSignal {
				t.Errorf("Signal = %q, want %q", xe.Signal, tc.wantSignal)
			}
			msg := err.Error()
			for _, s := range tc.wantIn {
				if !strings.Contains(msg, s) {
					t.Errorf("error %q does not contain %q", msg, s)
				}
			}
			for _, s := range tc.wantNotIn {
				for name, text := range map[string]string{"error": msg, "ExitError.Stderr": xe.Stderr, "Result.Stderr": res.Stderr} {
					if strings.Contains(text, s) {
						t.Errorf("%s leaks %q: %q", name, s, text)
					}
				}
			}
			if res.Stderr != xe.Stderr {
				t.Errorf("Result.Stderr %q differs from ExitError.Stderr %q", res.Stderr, xe.Stderr)
			}
		})
	}
}

func TestRunEmptyOutput(t *testing.T) {
	const secret = "empty-secret-42"
	cases := []struct {
		name      string
		body      string
		allow     bool
		wantEmpty bool
		wantIn    string
	}{
		{name: "nothing written", body: `exit 0`, wantEmpty: true, wantIn: "fake-dump wrote no output"},
		{name: "stderr only", body: `echo "warning: ` + secret + ` has no tables" >&2`, wantEmpty: true, wantIn: "warning: *** has no tables"},
		{name: "allowed", body: `exit 0`, allow: true},
		{name: "allowed with stderr", body: `echo notice >&2`, allow: true},
		{name: "one byte is not empty", body: `printf x`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			_, err := Run(testCtx(t, 10*time.Second), Command{
				Path:             script(t, "fake-dump", tc.body),
				Stdout:           &out,
				Secrets:          []string{secret},
				AllowEmptyOutput: tc.allow,
			})
			if got := errors.Is(err, sdk.ErrEmptyDump); got != tc.wantEmpty {
				t.Fatalf("err = %v; errors.Is(err, ErrEmptyDump) = %v, want %v", err, got, tc.wantEmpty)
			}
			if !tc.wantEmpty && err != nil {
				t.Fatalf("err = %v, want success", err)
			}
			if err != nil {
				if !strings.Contains(err.Error(), tc.wantIn) {
					t.Errorf("error %q does not contain %q", err, tc.wantIn)
				}
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error leaks the secret: %q", err)
				}
			}
		})
	}
}

func TestRunHugeStderrIsBounded(t *testing.T) {
	// 1 MiB of stderr between a recognisable head and tail, with a marker
	// in the middle that must be dropped.
	body := `printf 'HEAD-MARK'  >&2
head -c 524288 /dev/zero | tr '\000' 'a' >&2
printf 'MIDDLE-MARK' >&2
head -c 524288 /dev/zero | tr '\000' 'b' >&2
printf 'TAIL-MARK' >&2
exit 1`
	for _, limit := range []int{0, 1000, 64 << 10} {
		t.Run("limit "+strconv.Itoa(limit), func(t *testing.T) {
			effective := limit
			if effective == 0 {
				effective = 16 << 10
			}
			res, err := Run(testCtx(t, 20*time.Second), Command{
				Path:        script(t, "noisy", body),
				Stdout:      io.Discard,
				StderrLimit: limit,
			})
			var xe *ExitError
			if !errors.As(err, &xe) {
				t.Fatalf("err = %v, want *ExitError", err)
			}
			const marker = 200 // room for the omission note and the prefix
			if n := len(err.Error()); n > effective+marker {
				t.Errorf("error is %d bytes, want at most about %d", n, effective)
			}
			if n := len(res.Stderr); n > effective+marker {
				t.Errorf("Result.Stderr is %d bytes, want at most about %d", n, effective)
			}
			for _, s := range []string{"HEAD-MARK", "TAIL-MARK", "omitted"} {
				if !strings.Contains(xe.Stderr, s) {
					t.Errorf("kept stderr lacks %q", s)
				}
			}
			if strings.Contains(xe.Stderr, "MIDDLE-MARK") {
				t.Error("kept stderr contains the middle of a 1 MiB stream")
			}
			if !strings.HasPrefix(xe.Stderr, "HEAD-MARK") || !strings.HasSuffix(xe.Stderr, "TAIL-MARK") {
				t.Errorf("kept stderr does not start with the head and end with the tail: %.30q ... %.30q",
					xe.Stderr, xe.Stderr[max(0, len(xe.Stderr)-30):])
			}
		})
	}
}

func TestBoundedBuffer(t *testing.T) {
	data := []byte(strings.Repeat("abcdefghijklmnopqrstuvwxyz0123456789", 100)) // 3600 bytes
	cases := []struct {
		name   string
		limit  int
		writes []int // sizes of consecutive writes of data
	}{
		{"fits in one write", 10000, []int{3600}},
		{"fits exactly", 3600, []int{3600}},
		{"one big write", 100, []int{3600}},
		{"byte by byte", 64, func() []int {
			w := make([]int, 3600)
			for i := range w {
				w[i] = 1
			}
			return w
		}()},
		{"uneven writes", 101, []int{7, 300, 1, 50, 1000, 2242}},
		{"head exactly filled first", 200, []int{100, 3500}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := toolout.NewBounded(tc.limit)
			off := 0
			for _, n := range tc.writes {
				k, err := b.Write(data[off : off+n])
				if k != n || err != nil {
					t.Fatalf("Write(%d bytes) = %d, %v", n, k, err)
				}
				off += n
			}
			got := b.String()
			half := tc.limit / 2
			if len(data) <= 2*half {
				if got != string(data) {
					t.Fatalf("got %q, want everything", got)
				}
				return
			}
			want := string(data[:half]) + "\n[... " + strconv.Itoa(len(data)-2*half) + " bytes of stderr omitted ...]\n" + string(data[len(data)-half:])
			if got != want {
				t.Errorf("got  %q\nwant %q", got, want)
			}
		})
	}
}

func TestRunCancellation(t *testing.T) {
	cases := []struct {
		name  string
		body  string
		grace time.Duration
		// minElapsed > 0 means the tool ignores SIGTERM and must have been
		// killed only after the grace period.
		minElapsed time.Duration
	}{
		{
			name:  "sleeping tool",
			body:  `sleep 30 & echo $! > "$PIDFILE"; wait`,
			grace: 5 * time.Second,
		},
		{
			name:       "tool ignoring SIGTERM",
			body:       `trap '' TERM; sleep 30 & echo $! > "$PIDFILE"; wait`,
			grace:      300 * time.Millisecond,
			minElapsed: 300 * time.Millisecond,
		},
		{
			name:  "grandchild via sh -c",
			body:  `sh -c 'sleep 30 & echo $! > "$PIDFILE"; wait'`,
			grace: 5 * time.Second,
		},
		{
			name:       "grandchild ignoring SIGTERM",
			body:       `trap '' TERM; sh -c 'sleep 30 & echo $! > "$PIDFILE"; wait'; sleep 30`,
			grace:      300 * time.Millisecond,
			minElapsed: 300 * time.Millisecond,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pidFile := filepath.Join(t.TempDir(), "grandchild.pid")
			ctx, cancel := context.WithCancel(testCtx(t, 30*time.Second))
			defer cancel()
			type outcome struct {
				err     error
				elapsed time.Duration
			}
			done := make(chan outcome, 1)
			var cancelled time.Time
			started := make(chan struct{})
			go func() {
				_, err := Run(ctx, Command{
					Path:      script(t, "slow-dump", tc.body),
					Env:       []string{"PIDFILE=" + pidFile},
					Stdout:    io.Discard,
					KillGrace: tc.grace,
				})
				<-started
				done <- outcome{err, time.Since(cancelled)}
			}()
			pid, err := strconv.Atoi(waitFile(t, pidFile, 10*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			// Let the shell reach its wait (and its trap take effect).
			time.Sleep(50 * time.Millisecond)
			cancelled = time.Now()
			cancel()
			close(started)
			var o outcome
			select {
			case o = <-done:
			case <-time.After(tc.grace + 5*time.Second):
				_ = syscall.Kill(pid, syscall.SIGKILL)
				t.Fatalf("Run did not return within %v of cancellation", tc.grace+5*time.Second)
			}
			if !errors.Is(o.err, context.Canceled) {
				t.Errorf("err = %v, want it to wrap context.Canceled", o.err)
			}
			limit := 2 * time.Second
			if tc.minElapsed > 0 {
				limit = tc.grace + 2*time.Second
			}
			if o.elapsed > limit {
				t.Errorf("Run returned %v after cancellation, want under %v", o.elapsed, limit)
			}
			if o.elapsed < tc.minElapsed {
				t.Errorf("Run returned %v after cancellation of a tool ignoring SIGTERM, before the %v grace period", o.elapsed, tc.grace)
			}
			assertGone(t, "grandchild", pid)
		})
	}
}

func TestRunAlreadyCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	_, err := Run(ctx, Command{Path: script(t, "tool", `sleep 30`), Stdout: io.Discard, KillGrace: time.Second})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Run with a cancelled context took %v", d)
	}
}

func TestRunDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := Run(ctx, Command{Path: script(t, "tool", `sleep 30`), Stdout: io.Discard, KillGrace: time.Second})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want context.DeadlineExceeded", err)
	}
}

type failingWriter struct {
	err    error
	after  int // bytes accepted before failing
	n      int
	writes int
}

func (w *failingWriter) Write(p []byte) (int, error) {
	w.writes++
	if w.n+len(p) <= w.after {
		w.n += len(p)
		return len(p), nil
	}
	k := w.after - w.n
	w.n = w.after
	return k, w.err
}

func TestRunFailingStdout(t *testing.T) {
	cases := []struct {
		name  string
		body  string
		after int
	}{
		// A tool that keeps writing dies of SIGPIPE once the pipe closes.
		{"streaming tool", `while :; do echo 'some dump data'; done`, 0},
		{"streaming tool, some accepted", `head -c 10000000 /dev/zero`, 100000},
		// A tool that wrote once and then blocks (say, waiting on a slow
		// query) never sees SIGPIPE: Run must stop it.
		{"tool that stops writing", `printf 'x'; sleep 30 & echo $! > "$PIDFILE"; wait`, 0},
		{"tool that ignores SIGPIPE", `trap '' PIPE; printf 'x'; sleep 30 & echo $! > "$PIDFILE"; wait`, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pidFile := filepath.Join(t.TempDir(), "child.pid")
			boom := errors.New("disk full")
			w := &failingWriter{err: boom, after: tc.after}
			start := time.Now()
			// The context only ends a runaway test; it must not be what
			// stops the tool.
			res, err := Run(testCtx(t, 15*time.Second), Command{
				Path:      script(t, "fake-dump", tc.body),
				Env:       []string{"PIDFILE=" + pidFile},
				Stdout:    w,
				KillGrace: 500 * time.Millisecond,
			})
			elapsed := time.Since(start)
			if !errors.Is(err, boom) {
				t.Fatalf("err = %v, want it to wrap the writer's error", err)
			}
			if errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("err = %v: the tool was stopped by the test's deadline, not by Run", err)
			}
			if elapsed > 5*time.Second {
				t.Errorf("Run took %v after the writer failed", elapsed)
			}
			if res.StdoutBytes != int64(tc.after) {
				t.Errorf("StdoutBytes = %d, want the %d bytes the writer accepted", res.StdoutBytes, tc.after)
			}
			if b, err := os.ReadFile(pidFile); err == nil {
				if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
					assertGone(t, "the tool's child", pid)
				}
			}
		})
	}
}

func TestRunEnvironment(t *testing.T) {
	t.Setenv("LB_TEST_SECRET", "leaked-from-host")
	t.Setenv("TZ", "Europe/Paris")
	t.Setenv("HOME", "/home/lb-test")
	dir := t.TempDir()
	body := `printf '%s' "$PGPASSWORD" > "$OUT/pgpassword"
printf '%s' "${LB_TEST_SECRET-unset}" > "$OUT/lb_test_secret"
printf '%s' "$TZ" > "$OUT/tz"
printf '%s' "$HOME" > "$OUT/home"
printf '%s' "$PATH" > "$OUT/path"
env > "$OUT/env"
echo ok`
	var argvFile = filepath.Join(dir, "argv")
	_, err := Run(testCtx(t, 10*time.Second), Command{
		Path:   script(t, "envtool", body+"\necho \"$@\" > \""+argvFile+"\""),
		Args:   []string{"--dbname", "app"},
		Env:    []string{"PGPASSWORD=pw-from-env", "OUT=" + dir, "TZ=UTC"},
		Stdout: io.Discard,
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	cases := []struct{ file, want string }{
		{"pgpassword", "pw-from-env"}, // Env reaches the tool
		{"lb_test_secret", "unset"},   // the host's other variables do not
		{"tz", "UTC"},                 // Env overrides the base list
		{"home", "/home/lb-test"},     // the base list is inherited
		{"path", os.Getenv("PATH")},   // so is PATH
		{"argv", "--dbname app\n"},    // args arrive, without secrets
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			if got := read(tc.file); got != tc.want {
				t.Errorf("%s = %q, want %q", tc.file, got, tc.want)
			}
		})
	}
	if env := read("env"); strings.Contains(env, "leaked-from-host") {
		t.Errorf("the tool's environment carries the host's LB_TEST_SECRET:\n%s", env)
	}
}

func TestSysProcAttrOwnProcessGroup(t *testing.T) {
	if a := sysProcAttr(); a == nil || !a.Setpgid {
		t.Fatalf("sysProcAttr() = %+v, want Setpgid so cancellation reaches the tool's children", a)
	}
}

func TestBaseName(t *testing.T) {
	cases := []struct{ in, want string }{
		{"pg_dump", "pg_dump"},
		{"/usr/bin/pg_dump", "pg_dump"},
		{"./bin/mariadb-dump", "mariadb-dump"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			if got := toolout.BaseName(tc.in); got != tc.want {
				t.Errorf("baseName(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
