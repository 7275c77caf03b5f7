package sdk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/labelbackup/label-backup/sdk/internal/gen/labelbackup/plugin/v1"
	"github.com/labelbackup/label-backup/sdk/internal/toolout"
)

// fakeHost is a host-side ExecHandler that behaves like a tiny container.
type fakeHost struct {
	mu        sync.Mutex
	specs     []ExecSpec
	cancelled bool
}

func (h *fakeHost) Exec(ctx context.Context, spec ExecSpec, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	h.mu.Lock()
	h.specs = append(h.specs, spec)
	h.mu.Unlock()
	switch toolout.BaseName(spec.Argv[0]) {
	case "cat":
		if stdin == nil {
			return 1, nil
		}
		_, err := io.Copy(stdout, stdin)
		return 0, err
	case "env":
		fmt.Fprint(stdout, strings.Join(spec.Env, "\n"))
		return 0, nil
	case "fail":
		fmt.Fprint(stderr, "FATAL: database \"nope\" does not exist (password sup3rsecret)")
		return 3, nil
	case "warn":
		fmt.Fprint(stdout, "data")
		fmt.Fprint(stderr, "a warning")
		return 0, nil
	case "empty":
		fmt.Fprint(stderr, "nothing to say")
		return 0, nil
	case "yes":
		chunk := bytes.Repeat([]byte("y"), 64<<10)
		for {
			_, err := stdout.Write(chunk)
			if err != nil || ctx.Err() != nil {
				h.mu.Lock()
				h.cancelled = true
				h.mu.Unlock()
				return -1, errors.Join(err, ctx.Err())
			}
		}
	case "sleep":
		<-ctx.Done()
		h.mu.Lock()
		h.cancelled = true
		h.mu.Unlock()
		return -1, ctx.Err()
	case "broken":
		return -1, fmt.Errorf("docker engine gone: %w", ErrUnavailable)
	}
	fmt.Fprintf(stderr, "OCI runtime exec failed: %q: executable file not found in $PATH", spec.Argv[0])
	return 127, nil
}

func (h *fakeHost) wasCancelled() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cancelled
}

// execDumper runs one Command through the host's executor in each call and
// keeps the plugin-side result for the test to inspect.
type execDumper struct {
	cmd     func(w io.Writer, r io.Reader) Command
	mu      sync.Mutex
	offered bool
	res     ExecResult
	err     error
	written []byte
}

func (d *execDumper) Info() Info {
	return Info{Name: "execfake", Kind: KindDumper, Capabilities: []string{CapRestore}, DefaultExtension: ".raw"}
}

func (d *execDumper) run(ctx context.Context, w io.Writer, r io.Reader) error {
	ex, ok := Exec(ctx)
	d.mu.Lock()
	d.offered = ok
	d.mu.Unlock()
	if !ok {
		return fmt.Errorf("no executor: %w", ErrUnsupported)
	}
	res, err := ex.Run(ctx, d.cmd(w, r))
	d.mu.Lock()
	d.res, d.err = res, err
	d.mu.Unlock()
	return err
}

func (d *execDumper) Validate(ctx context.Context, _ Target) (ValidateResult, error) {
	var out bytes.Buffer
	if err := d.run(ctx, &out, nil); err != nil {
		return ValidateResult{}, err
	}
	return ValidateResult{ServerVersion: out.String()}, nil
}

func (d *execDumper) Dump(ctx context.Context, _ Target, w io.Writer) (DumpResult, error) {
	return DumpResult{}, d.run(ctx, w, nil)
}

func (d *execDumper) Restore(ctx context.Context, _ Target, _ string, r io.Reader) (RestoreResult, error) {
	var out bytes.Buffer
	err := d.run(ctx, &out, r)
	d.mu.Lock()
	d.written = out.Bytes()
	d.mu.Unlock()
	return RestoreResult{}, err
}

func (d *execDumper) result() (ExecResult, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.res, d.err
}

// connect starts d behind go-plugin's in-process gRPC transport (with its
// broker) and returns the host's client.
func connect(t *testing.T, d Dumper, multiplex bool) *DumperClient {
	t.Helper()
	client, _ := plugin.TestPluginGRPCConn(t, multiplex, map[string]plugin.Plugin{dumperName: &DumperPlugin{Impl: d}})
	t.Cleanup(func() { client.Close() })
	raw, err := client.Dispense(dumperName)
	if err != nil {
		t.Fatal(err)
	}
	return raw.(*DumperClient)
}

var execTarget = Target{Connection: "x", Container: ContainerRef{ID: "c0ffee", Name: "db"}}

func TestExecDumpThroughHost(t *testing.T) {
	for _, multiplex := range []bool{false, true} {
		t.Run(fmt.Sprintf("multiplex=%v", multiplex), func(t *testing.T) {
			input := bytes.Repeat([]byte("0123456789abcdef"), (3<<20)/16+7) // several chunks, not aligned
			d := &execDumper{cmd: func(w io.Writer, _ io.Reader) Command {
				return Command{Argv: []string{"cat"}, Stdin: bytes.NewReader(input), Stdout: w, Env: []string{"PGPASSWORD=pw"}}
			}}
			c := connect(t, d, multiplex)
			host := &fakeHost{}
			var out bytes.Buffer
			res, err := c.Dump(WithExecHandler(context.Background(), host), execTarget, &out)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), input) || res.Bytes != int64(len(input)) {
				t.Fatalf("dump got %d bytes (res %d), want %d identical", out.Len(), res.Bytes, len(input))
			}
			if got, _ := d.result(); got.StdoutBytes != int64(len(input)) {
				t.Errorf("StdoutBytes = %d", got.StdoutBytes)
			}
			if len(host.specs) != 1 || host.specs[0].ContainerID != "c0ffee" || host.specs[0].Env[0] != "PGPASSWORD=pw" {
				t.Errorf("host saw %+v", host.specs)
			}
		})
	}
}

func TestExecNotOfferedWithoutHandler(t *testing.T) {
	d := &execDumper{cmd: func(w io.Writer, _ io.Reader) Command { return Command{Argv: []string{"env"}, Stdout: w} }}
	c := connect(t, d, false)
	_, err := c.Dump(context.Background(), execTarget, io.Discard)
	if !errors.Is(err, ErrUnsupported) || d.offered {
		t.Fatalf("err = %v, offered = %v; want no executor", err, d.offered)
	}
}

func TestExecSemanticsMatchToolexec(t *testing.T) {
	cases := []struct {
		name  string
		cmd   Command
		check func(t *testing.T, res ExecResult, err error)
	}{
		{
			name: "non-zero exit with scrubbed stderr",
			cmd:  Command{Argv: []string{"/usr/bin/fail", "--x"}, Secrets: []string{"sup3rsecret"}},
			check: func(t *testing.T, res ExecResult, err error) {
				var xe *ExitError
				if !errors.As(err, &xe) || xe.ExitCode != 3 || xe.Tool != "fail" {
					t.Fatalf("err = %#v, want *ExitError code 3", err)
				}
				want := `fail exited with status 3: FATAL: database "nope" does not exist (password ***)`
				if err.Error() != want {
					t.Errorf("err = %q\nwant  %q", err, want)
				}
				if strings.Contains(res.Stderr, "sup3rsecret") {
					t.Errorf("stderr leaks the secret: %q", res.Stderr)
				}
			},
		},
		{
			name: "missing program",
			cmd:  Command{Argv: []string{"pg_dumpp"}},
			check: func(t *testing.T, _ ExecResult, err error) {
				var xe *ExitError
				if !errors.As(err, &xe) || xe.ExitCode != 127 || !strings.Contains(err.Error(), "executable file not found") {
					t.Fatalf("err = %v", err)
				}
			},
		},
		{
			name: "empty output fails",
			cmd:  Command{Argv: []string{"empty"}},
			check: func(t *testing.T, _ ExecResult, err error) {
				if !errors.Is(err, ErrEmptyDump) || err.Error() != "empty wrote no output (stderr: nothing to say): "+ErrEmptyDump.Error() {
					t.Fatalf("err = %v", err)
				}
			},
		},
		{
			name: "empty output allowed",
			cmd:  Command{Argv: []string{"empty"}, AllowEmptyOutput: true},
			check: func(t *testing.T, res ExecResult, err error) {
				if err != nil || res.Stderr != "nothing to say" || res.StdoutBytes != 0 {
					t.Fatalf("res %+v err %v", res, err)
				}
			},
		},
		{
			name: "warnings on success",
			cmd:  Command{Argv: []string{"warn"}},
			check: func(t *testing.T, res ExecResult, err error) {
				if err != nil || res.Stderr != "a warning" || res.StdoutBytes != 4 {
					t.Fatalf("res %+v err %v", res, err)
				}
			},
		},
		{
			name: "host failure",
			cmd:  Command{Argv: []string{"broken"}},
			check: func(t *testing.T, _ ExecResult, err error) {
				if !errors.Is(err, ErrUnavailable) || !strings.HasPrefix(err.Error(), "running broken: ") {
					t.Fatalf("err = %v", err)
				}
			},
		},
		{
			name: "empty argv",
			cmd:  Command{},
			check: func(t *testing.T, _ ExecResult, err error) {
				if !errors.Is(err, ErrInvalidArgument) {
					t.Fatalf("err = %v", err)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := &execDumper{cmd: func(w io.Writer, _ io.Reader) Command {
				c := tc.cmd
				if c.Stdout == nil {
					c.Stdout = w
				}
				return c
			}}
			c := connect(t, d, false)
			_, _ = c.Dump(WithExecHandler(context.Background(), &fakeHost{}), execTarget, io.Discard)
			res, err := d.result()
			tc.check(t, res, err)
		})
	}
}

func TestExecStdoutWriteFailureStopsCommand(t *testing.T) {
	boom := errors.New("disk on fire")
	d := &execDumper{cmd: func(io.Writer, io.Reader) Command {
		return Command{Argv: []string{"yes"}, Stdout: failingWriter{err: boom}}
	}}
	c := connect(t, d, false)
	host := &fakeHost{}
	_, _ = c.Dump(WithExecHandler(context.Background(), host), execTarget, io.Discard)
	_, err := d.result()
	if !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "writing yes output: ") {
		t.Fatalf("err = %v", err)
	}
	waitTrue(t, "the host's command to be stopped", host.wasCancelled)
}

func TestExecCancellation(t *testing.T) {
	d := &execDumper{cmd: func(w io.Writer, _ io.Reader) Command { return Command{Argv: []string{"sleep"}, Stdout: w} }}
	c := connect(t, d, false)
	host := &fakeHost{}
	ctx, cancel := context.WithCancel(WithExecHandler(context.Background(), host))
	defer cancel()
	// Cancel once the command runs on the host (a fixed deadline raced
	// with starting it on a loaded machine).
	go func() {
		for range 1000 {
			host.mu.Lock()
			started := len(host.specs) > 0
			host.mu.Unlock()
			if started {
				time.Sleep(50 * time.Millisecond)
				cancel()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	if _, err := c.Dump(ctx, execTarget, io.Discard); err == nil {
		t.Fatal("dump succeeded")
	}
	waitTrue(t, "the plugin's Run to return", func() bool { _, err := d.result(); return err != nil })
	_, err := d.result()
	if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a cancellation", err)
	}
	if !strings.HasPrefix(err.Error(), "sleep cancelled: ") {
		t.Errorf("err = %q", err)
	}
	waitTrue(t, "the host's command to be stopped", host.wasCancelled)
}

func TestExecRestoreStreamsStdin(t *testing.T) {
	d := &execDumper{cmd: func(w io.Writer, r io.Reader) Command {
		return Command{Argv: []string{"cat"}, Stdin: r, Stdout: w}
	}}
	c := connect(t, d, false)
	input := bytes.Repeat([]byte("restore me "), 300_000)
	if _, err := c.Restore(WithExecHandler(context.Background(), &fakeHost{}), execTarget, "raw", bytes.NewReader(input)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(d.written, input) {
		t.Fatalf("the container's stdin got %d bytes, want %d", len(d.written), len(input))
	}
}

func TestExecStdinReadError(t *testing.T) {
	bad := errors.New("upload broken")
	d := &execDumper{cmd: func(w io.Writer, _ io.Reader) Command {
		return Command{Argv: []string{"cat"}, Stdin: io.MultiReader(strings.NewReader("abc"), errReader{bad}), Stdout: w}
	}}
	c := connect(t, d, false)
	_, _ = c.Dump(WithExecHandler(context.Background(), &fakeHost{}), execTarget, io.Discard)
	if _, err := d.result(); !errors.Is(err, bad) || !strings.HasPrefix(err.Error(), "running cat: ") {
		t.Fatalf("err = %v", err)
	}
}

func TestExecOfferedToValidate(t *testing.T) {
	d := &execDumper{cmd: func(w io.Writer, _ io.Reader) Command { return Command{Argv: []string{"warn"}, Stdout: w} }}
	c := connect(t, d, false)
	res, err := c.Validate(WithExecHandler(context.Background(), &fakeHost{}), execTarget)
	if err != nil || res.ServerVersion != "data" {
		t.Fatalf("res %+v err %v", res, err)
	}
}

// The host's service refuses any container but the call's own, and a
// stream that does not start with a start message.
func TestExecServerRestrictsContainer(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	host := &fakeHost{}
	pb.RegisterExecServiceServer(srv, &execServer{h: host, containerID: "mine"})
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	client := pb.NewExecServiceClient(conn)

	try := func(first *pb.ExecRequest) error {
		stream, err := client.Exec(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		_ = stream.Send(first)
		_ = stream.CloseSend()
		for {
			if _, err := stream.Recv(); err != nil {
				return err
			}
		}
	}
	err = try(&pb.ExecRequest{Msg: &pb.ExecRequest_Start{Start: &pb.ExecStart{ContainerId: "someone-else", Argv: []string{"env"}}}})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("other container: %v", err)
	}
	err = try(&pb.ExecRequest{Msg: &pb.ExecRequest_Stdin{Stdin: []byte("x")}})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("no start: %v", err)
	}
	err = try(&pb.ExecRequest{Msg: &pb.ExecRequest_Start{Start: &pb.ExecStart{Argv: []string{"env"}, Env: []string{"NOEQUALS"}}}})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("bad env: %v", err)
	}
	if len(host.specs) != 0 {
		t.Errorf("the handler ran: %+v", host.specs)
	}
	// An empty container id means the call's own.
	ex := newExecutorFromConn(conn)
	var out bytes.Buffer
	if _, err := ex.Run(context.Background(), Command{Argv: []string{"env"}, Env: []string{"A=1"}, Stdout: &out}); err != nil || out.String() != "A=1" {
		t.Fatalf("out %q err %v", out.String(), err)
	}
	if host.specs[0].ContainerID != "mine" {
		t.Errorf("ran in %q", host.specs[0].ContainerID)
	}
}

func TestBoundedStderrFromHost(t *testing.T) {
	h := handlerFunc(func(_ context.Context, _ ExecSpec, _ io.Reader, stdout, stderr io.Writer) (int, error) {
		fmt.Fprint(stderr, "HEAD"+strings.Repeat("x", 100_000)+"TAIL")
		return 2, nil
	})
	d := &execDumper{cmd: func(w io.Writer, _ io.Reader) Command {
		return Command{Argv: []string{"noisy"}, Stdout: w, StderrLimit: 1024}
	}}
	c := connect(t, d, false)
	_, _ = c.Dump(WithExecHandler(context.Background(), h), execTarget, io.Discard)
	_, err := d.result()
	var xe *ExitError
	if !errors.As(err, &xe) || len(xe.Stderr) > 1200 || !strings.HasPrefix(xe.Stderr, "HEAD") || !strings.HasSuffix(xe.Stderr, "TAIL") ||
		!strings.Contains(xe.Stderr, "bytes of stderr omitted") {
		t.Fatalf("err = %.300v", err)
	}
}

type handlerFunc func(context.Context, ExecSpec, io.Reader, io.Writer, io.Writer) (int, error)

func (f handlerFunc) Exec(ctx context.Context, s ExecSpec, in io.Reader, out, errw io.Writer) (int, error) {
	return f(ctx, s, in, out, errw)
}

type failingWriter struct{ err error }

func (f failingWriter) Write(p []byte) (int, error) { return 0, f.err }

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func waitTrue(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestModeExecutor(t *testing.T) {
	withHost := WithExecutor(context.Background(), stubExecutor{})
	cases := []struct {
		name    string
		ctx     context.Context
		mode    string
		wantEx  bool
		wantErr error
	}{
		{"network by default", withHost, "", false, nil},
		{"network", withHost, ModeNetwork, false, nil},
		{"exec", withHost, ModeExec, true, nil},
		{"exec without a host executor", context.Background(), ModeExec, false, ErrUnsupported},
		{"unknown", withHost, "ssh", false, ErrInvalidArgument},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ex, err := ModeExecutor(c.ctx, Target{Options: map[string]string{OptionMode: c.mode}})
			if !errors.Is(err, c.wantErr) || (ex != nil) != c.wantEx {
				t.Fatalf("ex %v err %v", ex, err)
			}
		})
	}
}

// stubExecutor runs nothing.
type stubExecutor struct{}

func (stubExecutor) Run(context.Context, Command) (ExecResult, error) { return ExecResult{}, nil }
