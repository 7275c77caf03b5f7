package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/labelbackup/label-backup/sdk/internal/gen/labelbackup/plugin/v1"
	"github.com/labelbackup/label-backup/sdk/internal/toolout"
)

// Command is one run of a program through an [Executor].
type Command struct {
	// Argv is the program and its arguments. Never put secrets here.
	Argv []string
	// Env entries ("NAME=value") are added to the environment the program
	// runs with. Secrets go here, e.g. "PGPASSWORD=...".
	Env []string
	// Stdin, when set, is copied to the program's standard input.
	Stdin io.Reader
	// Stdout receives the program's standard output; nil discards it.
	Stdout io.Writer
	// Secrets are scrubbed from the stderr text put into errors.
	Secrets []string
	// AllowEmptyOutput turns off the rule that a run which wrote nothing to
	// Stdout failed. Dumps must leave it false.
	AllowEmptyOutput bool
	// StderrLimit bounds the stderr kept for errors (default 16 KiB: the
	// first and last halves are kept).
	StderrLimit int
}

// ExecResult describes a finished run.
type ExecResult struct {
	// StdoutBytes is how many bytes the program wrote to stdout.
	StdoutBytes int64
	// Stderr is the kept part of the program's stderr, scrubbed of secrets.
	Stderr string
}

// ExitError reports a program that exited non-zero or was killed. The
// toolexec package reports local tools with the same type
// (toolexec.ExitError is an alias), so one errors.As covers both.
type ExitError struct {
	Tool     string
	ExitCode int // -1 when killed by a signal or unknown
	Signal   string
	Stderr   string
}

func (e *ExitError) Error() string {
	var b strings.Builder
	b.WriteString(e.Tool)
	if e.Signal != "" {
		fmt.Fprintf(&b, " killed by %s", e.Signal)
	} else {
		fmt.Fprintf(&b, " exited with status %d", e.ExitCode)
	}
	if s := strings.TrimSpace(e.Stderr); s != "" {
		b.WriteString(": ")
		b.WriteString(s)
	}
	return b.String()
}

// Executor runs programs somewhere other than the plugin's own process:
// inside the database's container, through the host. Its Run has exactly
// the semantics of toolexec.Run: it fails when the program cannot start,
// exits non-zero (*ExitError with the bounded, scrubbed stderr), writes
// nothing to Stdout (unless AllowEmptyOutput; ErrEmptyDump), when writing
// to Stdout fails (the program is then stopped), or when ctx is done (the
// program is stopped; the error wraps ctx.Err()).
type Executor interface {
	Run(ctx context.Context, cmd Command) (ExecResult, error)
}

type execKey struct{}

// Exec returns the executor the host offers for the current call: the
// database's own container. ok is false when the host offers none (the job
// is not in exec mode, or the host is too old).
func Exec(ctx context.Context) (Executor, bool) {
	e, ok := ctx.Value(execKey{}).(Executor)
	return e, ok && e != nil
}

// ModeExecutor returns where the tools for t run, by t's mode
// (Options[OptionMode]): nil, for the plugin's own machine, in network
// mode; the host's executor, inside the database's container, in exec
// mode. It fails for an unknown mode, and in exec mode when the host
// offers no executor.
func ModeExecutor(ctx context.Context, t Target) (Executor, error) {
	switch mode := t.Options[OptionMode]; mode {
	case "", ModeNetwork:
		return nil, nil
	case ModeExec:
		ex, ok := Exec(ctx)
		if !ok {
			return nil, fmt.Errorf("exec mode, but the host offers no exec service: %w", ErrUnsupported)
		}
		return ex, nil
	default:
		return nil, fmt.Errorf("unknown mode %q (network or exec): %w", mode, ErrInvalidArgument)
	}
}

// WithExecutor returns a context whose calls to [Exec] return e. The SDK
// does this for every call the host offers an executor to; tests of
// plugins use it to put in a fake.
func WithExecutor(ctx context.Context, e Executor) context.Context {
	return context.WithValue(ctx, execKey{}, e)
}

// ---- host side ----

// ExecSpec is one command a plugin asked the host to run.
type ExecSpec struct {
	// ContainerID is the container of the call's Target: the only one a
	// plugin may run commands in.
	ContainerID string
	Argv        []string
	Env         []string
}

// ExecHandler runs plugin commands for the host (with Docker exec, say).
// Exec copies stdin (nil when the plugin sends none) to the command, its
// stdout and stderr to the writers, and returns its exit code. An error
// means the command could not be run or followed to its end; a command that
// ran and failed is a nil error with a non-zero code.
type ExecHandler interface {
	Exec(ctx context.Context, spec ExecSpec, stdin io.Reader, stdout, stderr io.Writer) (int, error)
}

type execHandlerKey struct{}

// WithExecHandler returns a context that makes the DumperClient calls made
// with it (Validate, Dump, Restore) offer h to the plugin for the call's
// target container.
func WithExecHandler(ctx context.Context, h ExecHandler) context.Context {
	return context.WithValue(ctx, execHandlerKey{}, h)
}

func execHandlerFrom(ctx context.Context) ExecHandler {
	h, _ := ctx.Value(execHandlerKey{}).(ExecHandler)
	return h
}

// serveExec starts the ExecService for one call on the broker, when ctx
// carries a handler. It returns the broker ID to put in the request (0 for
// none) and a stop function that must be called when the call is over.
func serveExec(ctx context.Context, broker *plugin.GRPCBroker, containerID string) (uint32, func()) {
	h := execHandlerFrom(ctx)
	if h == nil || broker == nil {
		return 0, func() {}
	}
	id := broker.NextId()
	srvCh := make(chan *grpc.Server, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		broker.AcceptAndServe(id, func(opts []grpc.ServerOption) *grpc.Server {
			s := grpc.NewServer(append(opts, serverOptions()...)...)
			pb.RegisterExecServiceServer(s, &execServer{h: h, containerID: containerID})
			srvCh <- s
			return s
		})
	}()
	return id, func() {
		select {
		case s := <-srvCh:
			s.Stop()
			<-done
		case <-done:
		}
	}
}

// execServer is the host's ExecService for one call, bound to one
// container.
type execServer struct {
	pb.UnimplementedExecServiceServer
	h           ExecHandler
	containerID string
}

func (s *execServer) Exec(stream pb.ExecService_ExecServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	start := first.GetStart()
	if start == nil {
		return status.Error(codes.InvalidArgument, "exec: first message must be a start message")
	}
	if start.GetContainerId() != "" && start.GetContainerId() != s.containerID {
		return status.Error(codes.PermissionDenied, "exec: a plugin may run commands only in its target's own container")
	}
	if s.containerID == "" {
		return status.Error(codes.FailedPrecondition, "exec: the target has no container")
	}
	if len(start.GetArgv()) == 0 || start.GetArgv()[0] == "" {
		return status.Error(codes.InvalidArgument, "exec: empty argv")
	}
	for _, e := range start.GetEnv() {
		if !strings.Contains(e, "=") {
			return status.Error(codes.InvalidArgument, "exec: env entries must be NAME=value")
		}
	}
	ctx := stream.Context()
	var stdin io.Reader
	if start.GetStdin() {
		pr, pw := io.Pipe()
		defer pr.CloseWithError(errors.New("exec finished"))
		go func() {
			for {
				m, err := stream.Recv()
				if err != nil {
					pw.CloseWithError(err)
					return
				}
				switch {
				case m.GetStdinEof() != nil:
					pw.Close()
					return
				case m.GetStart() != nil:
					pw.CloseWithError(errors.New("exec: second start message"))
					return
				}
				if _, err := pw.Write(m.GetStdin()); err != nil {
					return
				}
			}
		}()
		stdin = pr
	}
	out := newChunkWriter(chunkSize(start.GetChunkSize()), func(b []byte) error {
		return stream.Send(&pb.ExecResponse{Msg: &pb.ExecResponse_Stdout{Stdout: b}})
	})
	limit := int(start.GetStderrLimit())
	if limit <= 0 {
		limit = 16 << 10
	}
	stderr := toolout.NewBounded(limit)
	code, err := s.h.Exec(ctx, ExecSpec{
		ContainerID: s.containerID,
		Argv:        slices.Clone(start.GetArgv()),
		Env:         slices.Clone(start.GetEnv()),
	}, stdin, out, stderr)
	if err == nil {
		err = out.Flush()
	}
	if err != nil {
		return toStatus(err)
	}
	return stream.Send(&pb.ExecResponse{Msg: &pb.ExecResponse_Exit{Exit: &pb.ExecExit{
		ExitCode:    int32(code),
		Stderr:      stderr.String(),
		StdoutBytes: uint64(out.n),
	}}})
}

// ---- plugin side ----

// remoteExecutor runs commands through the host's ExecService, dialled
// over the broker on first use.
type remoteExecutor struct {
	broker *plugin.GRPCBroker
	id     uint32

	once   sync.Once
	conn   *grpc.ClientConn
	client pb.ExecServiceClient
	err    error
}

func newRemoteExecutor(broker *plugin.GRPCBroker, id uint32) *remoteExecutor {
	return &remoteExecutor{broker: broker, id: id}
}

// withRemoteExecutor puts the host's executor into ctx when the request
// offers one; close must be called when the call is over.
func withRemoteExecutor(ctx context.Context, broker *plugin.GRPCBroker, id uint32) (context.Context, func()) {
	if id == 0 || broker == nil {
		return ctx, func() {}
	}
	e := newRemoteExecutor(broker, id)
	return WithExecutor(ctx, e), e.close
}

func (e *remoteExecutor) dial() (pb.ExecServiceClient, error) {
	e.once.Do(func() {
		opts := append(DialOptions(), grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessageSize)))
		e.conn, e.err = e.broker.DialWithOptions(e.id, opts...)
		if e.err == nil {
			e.client = pb.NewExecServiceClient(e.conn)
		}
	})
	return e.client, e.err
}

func (e *remoteExecutor) close() {
	e.once.Do(func() { e.err = errors.New("executor closed") })
	if e.conn != nil {
		e.conn.Close()
	}
}

// newExecutorFromConn is an Executor over an already connected gRPC
// client connection to an ExecService (tests).
func newExecutorFromConn(c *grpc.ClientConn) *remoteExecutor {
	e := &remoteExecutor{client: pb.NewExecServiceClient(c)}
	e.once.Do(func() {})
	return e
}

// stdinChunk is the size of the stdin messages sent to the host.
const stdinChunk = 256 << 10

func (e *remoteExecutor) Run(ctx context.Context, cmd Command) (ExecResult, error) {
	if len(cmd.Argv) == 0 || cmd.Argv[0] == "" {
		return ExecResult{}, fmt.Errorf("exec: empty argv: %w", ErrInvalidArgument)
	}
	tool := toolout.BaseName(cmd.Argv[0])
	client, err := e.dial()
	if err != nil {
		return ExecResult{}, fmt.Errorf("starting %s: connecting to the host's exec service: %w", tool, err)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.Exec(sctx)
	if err != nil {
		return ExecResult{}, fmt.Errorf("starting %s: %w", tool, fromStatus("exec", err))
	}
	err = stream.Send(&pb.ExecRequest{Msg: &pb.ExecRequest_Start{Start: &pb.ExecStart{
		Argv:        cmd.Argv,
		Env:         cmd.Env,
		Stdin:       cmd.Stdin != nil,
		StderrLimit: uint32(max(cmd.StderrLimit, 0)),
		ChunkSize:   DefaultChunkSize,
	}}})
	if err != nil && err != io.EOF {
		return ExecResult{}, fmt.Errorf("starting %s: %w", tool, fromStatus("exec", err))
	}

	// Stdin goes up in its own goroutine; a read error aborts the run.
	var stdinErr error
	stdinDone := make(chan struct{})
	if cmd.Stdin != nil {
		go func() {
			defer close(stdinDone)
			buf := make([]byte, stdinChunk)
			for {
				n, rerr := cmd.Stdin.Read(buf)
				if n > 0 {
					if stream.Send(&pb.ExecRequest{Msg: &pb.ExecRequest_Stdin{Stdin: buf[:n]}}) != nil {
						return // the run is over; Recv reports why
					}
				}
				if rerr == io.EOF {
					_ = stream.Send(&pb.ExecRequest{Msg: &pb.ExecRequest_StdinEof{StdinEof: &pb.ExecStdinEOF{}}})
					_ = stream.CloseSend()
					return
				}
				if rerr != nil {
					stdinErr = rerr
					cancel()
					return
				}
			}
		}()
	} else {
		_ = stream.CloseSend()
		close(stdinDone)
	}

	stdout := cmd.Stdout
	if stdout == nil {
		stdout = io.Discard
	}
	var res ExecResult
	var exit *pb.ExecExit
	var outErr, recvErr error
	for exit == nil && recvErr == nil && outErr == nil {
		m, err := stream.Recv()
		if err != nil {
			recvErr = err
			break
		}
		switch msg := m.GetMsg().(type) {
		case *pb.ExecResponse_Stdout:
			n, werr := stdout.Write(msg.Stdout)
			res.StdoutBytes += int64(n)
			if werr != nil {
				outErr = werr
			}
		case *pb.ExecResponse_Exit:
			exit = msg.Exit
		}
	}
	cancel() // stops the command when we leave early; a no-op after its exit
	<-stdinDone
	if exit != nil {
		res.Stderr = toolout.Scrub(exit.GetStderr(), cmd.Secrets)
	}

	if ctx.Err() != nil && exit == nil {
		return res, fmt.Errorf("%s cancelled: %w", tool, ctx.Err())
	}
	if outErr != nil {
		return res, fmt.Errorf("writing %s output: %w", tool, outErr)
	}
	if stdinErr != nil {
		return res, fmt.Errorf("running %s: %w", tool, stdinErr)
	}
	if exit == nil {
		if recvErr == io.EOF {
			return res, fmt.Errorf("running %s: the host's exec stream ended without an exit status: %w", tool, ErrIntegrity)
		}
		return res, fmt.Errorf("running %s: %w", tool, fromStatus("exec", recvErr))
	}
	if exit.GetStdoutBytes() != uint64(res.StdoutBytes) {
		return res, fmt.Errorf("running %s: the host sent %d stdout bytes, %d arrived: %w", tool, exit.GetStdoutBytes(), res.StdoutBytes, ErrIntegrity)
	}
	if code := int(exit.GetExitCode()); code != 0 {
		return res, &ExitError{Tool: tool, ExitCode: code, Stderr: res.Stderr}
	}
	if !cmd.AllowEmptyOutput && res.StdoutBytes == 0 {
		if s := strings.TrimSpace(res.Stderr); s != "" {
			return res, fmt.Errorf("%s wrote no output (stderr: %s): %w", tool, s, ErrEmptyDump)
		}
		return res, fmt.Errorf("%s wrote no output: %w", tool, ErrEmptyDump)
	}
	return res, nil
}
