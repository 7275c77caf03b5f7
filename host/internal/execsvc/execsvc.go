// Package execsvc is the host's side of exec mode: it runs a dumper
// plugin's commands inside the job's own database container with the
// Docker exec API (the Docker socket never leaves the host), and it reads
// the container's environment for zero-config credentials and ${VAR}
// references in backup.conn.
package execsvc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/labelbackup/label-backup/host/internal/discovery"
	"github.com/labelbackup/label-backup/host/internal/labels"
	"github.com/labelbackup/label-backup/sdk"
)

// Service runs commands in one container. It implements sdk.ExecHandler.
type Service struct {
	cli         *client.Client
	containerID string
}

var _ sdk.ExecHandler = (*Service)(nil)

// New returns a Service bound to containerID: it refuses to run anything
// anywhere else.
func New(cli *client.Client, containerID string) *Service {
	return &Service{cli: cli, containerID: containerID}
}

var (
	defaultOnce sync.Once
	defaultCli  *client.Client
	defaultErr  error
)

// DefaultClient is a Docker client for the engine named by the environment,
// shared by every run.
func DefaultClient() (*client.Client, error) {
	defaultOnce.Do(func() {
		defaultCli, defaultErr = discovery.NewClient()
	})
	return defaultCli, defaultErr
}

// pidMarker starts the first stderr line of a wrapped command: the shell
// wrapper prints its PID (which exec hands to the command) so that a
// cancelled command can be killed; Docker has no API to kill an exec.
const pidMarker = "label-backup-exec-pid:"

// wrapper runs argv under /bin/sh, which reports its PID and then becomes
// the command: arguments pass through "$@" untouched.
var wrapper = []string{"/bin/sh", "-c", `echo "` + pidMarker + `$$" >&2; exec "$@"`, "sh"}

// killGrace is how long a cancelled command gets between SIGTERM and
// SIGKILL.
const killGrace = 5 * time.Second

// Exec runs spec in the bound container: stdin (when not nil) is copied to
// the command, its output demultiplexed into stdout and stderr. It returns
// the exit code once the command has ended. The command runs under
// /bin/sh (every official database image has one) so that when ctx is done
// it can be stopped like a local tool: SIGTERM, then SIGKILL after a grace
// period.
func (s *Service) Exec(ctx context.Context, spec sdk.ExecSpec, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	if spec.ContainerID != s.containerID || s.containerID == "" {
		return -1, fmt.Errorf("exec: container %q is not this job's container: %w", spec.ContainerID, sdk.ErrPermission)
	}
	pf := &pidFilter{w: stderr}
	code, err := s.exec(ctx, append(slices.Clone(wrapper), spec.Argv...), spec.Env, stdin, stdout, pf)
	if err != nil && ctx.Err() != nil {
		if pid := pf.getPID(); pid != "" {
			s.kill(pid)
		}
		return -1, ctx.Err()
	}
	return code, err
}

// kill stops a cancelled command: SIGTERM, SIGKILL after killGrace.
func (s *Service) kill(pid string) {
	ctx, cancel := context.WithTimeout(context.Background(), killGrace+10*time.Second)
	defer cancel()
	script := `kill -TERM "$1" 2>/dev/null || exit 0
i=0
while kill -0 "$1" 2>/dev/null; do
  i=$((i+1)); [ "$i" -gt "$2" ] && { kill -KILL "$1" 2>/dev/null; exit 0; }
  sleep 0.1
done`
	ticks := strconv.Itoa(int(killGrace / (100 * time.Millisecond)))
	_, _ = s.exec(ctx, []string{"/bin/sh", "-c", script, "sh", pid, ticks}, nil, nil, io.Discard, io.Discard)
}

// exec runs argv in the container and follows it to its end.
func (s *Service) exec(ctx context.Context, argv, env []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	created, err := s.cli.ContainerExecCreate(ctx, s.containerID, container.ExecOptions{
		Cmd:          argv,
		Env:          env,
		AttachStdin:  stdin != nil,
		AttachStdout: true,
		AttachStderr: true,
	})
	if err != nil {
		return -1, fmt.Errorf("docker exec in container %s: %w", short(s.containerID), classify(err))
	}
	hr, err := s.cli.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		return -1, fmt.Errorf("docker exec attach in container %s: %w", short(s.containerID), classify(err))
	}
	defer hr.Close()

	if stdin != nil {
		go func() {
			// Ends when stdin ends (EOF closes the command's stdin) or
			// fails, or when the connection is closed after the command.
			if _, err := io.Copy(hr.Conn, stdin); err == nil {
				_ = hr.CloseWrite()
			} else {
				hr.Close()
			}
		}()
	}
	copied := make(chan error, 1)
	go func() {
		_, err := stdcopy.StdCopy(stdout, stderr, hr.Reader)
		copied <- err
	}()
	select {
	case err = <-copied:
	case <-ctx.Done():
		hr.Close()
		<-copied
		return -1, ctx.Err()
	}
	if err != nil {
		return -1, fmt.Errorf("docker exec output: %w", err)
	}
	// The output ends when the command does; its exit code may take a
	// moment to show.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ins, err := s.cli.ContainerExecInspect(ctx, created.ID)
		if err != nil {
			return -1, fmt.Errorf("docker exec inspect: %w", classify(err))
		}
		if !ins.Running {
			return ins.ExitCode, nil
		}
		if time.Now().After(deadline) {
			return -1, fmt.Errorf("docker exec: the command closed its output but is still running: %w", sdk.ErrUnavailable)
		}
		select {
		case <-ctx.Done():
			return -1, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// pidFilter takes the wrapper's PID line off the front of stderr and
// passes the rest through.
type pidFilter struct {
	w    io.Writer
	mu   sync.Mutex
	done bool
	buf  []byte
	pid  string
}

func (f *pidFilter) Write(p []byte) (int, error) {
	f.mu.Lock()
	if f.done {
		f.mu.Unlock()
		return f.w.Write(p)
	}
	f.buf = append(f.buf, p...)
	i := bytes.IndexByte(f.buf, '\n')
	if i < 0 && len(f.buf) < 256 {
		f.mu.Unlock()
		return len(p), nil
	}
	f.done = true
	rest := f.buf
	if i >= 0 && bytes.HasPrefix(f.buf, []byte(pidMarker)) {
		f.pid = string(f.buf[len(pidMarker):i])
		rest = f.buf[i+1:]
	}
	f.buf = nil
	f.mu.Unlock()
	if len(rest) > 0 {
		if _, err := f.w.Write(rest); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (f *pidFilter) getPID() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := strconv.Atoi(f.pid); err != nil {
		return ""
	}
	return f.pid
}

func classify(err error) error {
	switch {
	case client.IsErrNotFound(err) || errors.Is(err, sdk.ErrNotFound):
		return fmt.Errorf("%v: %w", err, sdk.ErrNotFound)
	case client.IsErrConnectionFailed(err):
		return fmt.Errorf("%v: %w", err, sdk.ErrUnavailable)
	}
	return err
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// Prepare readies target for a run of spec against containerID: it sets
// Options["mode"], resolves ${VAR} references in the connection from the
// container's environment, hands that environment to the plugin when the
// connection is to be derived from it, and, in exec mode, returns a context
// that offers the plugin an executor bound to the container. It needs the
// Docker engine only when one of these applies.
func Prepare(ctx context.Context, spec labels.Spec, target *sdk.Target) (context.Context, error) {
	needEnv := spec.Mode == labels.ModeExec || target.Connection == "" || strings.Contains(target.Connection, "${")
	if !needEnv {
		return ctx, nil
	}
	if target.Container.ID == "" {
		return ctx, fmt.Errorf("exec mode and container variables need the container's id: %w", sdk.ErrInvalidArgument)
	}
	cli, err := DefaultClient()
	if err != nil {
		return ctx, err // says "docker client: ..."
	}
	ins, err := cli.ContainerInspect(ctx, target.Container.ID)
	if err != nil {
		return ctx, fmt.Errorf("inspecting container %s: %w", target.Container.Name, classify(err))
	}
	var env map[string]string
	if ins.Config != nil {
		env = EnvMap(ins.Config.Env)
	}
	opts := make(map[string]string, len(target.Options)+2)
	for k, v := range target.Options {
		opts[k] = v
	}
	if target.Connection != "" {
		conn, err := Expand(target.Connection, env)
		if err != nil {
			return ctx, err
		}
		target.Connection = conn
	} else {
		target.ContainerEnv = env
		if ins.Config != nil {
			target.ContainerCommand = append(slices.Clone([]string(ins.Config.Entrypoint)), ins.Config.Cmd...)
		}
		if spec.Mode != labels.ModeExec {
			if h := containerHost(ins, agentNetworks(ctx, cli)); h != "" {
				opts[sdk.OptionHost] = h
			}
		}
	}
	// A derived connection may name secret files (POSTGRES_PASSWORD_FILE,
	// ...) that only exist inside the container: the plugin reads them
	// through the executor, which is why it is offered in network mode
	// too. Options["mode"] alone says where the dump tools run.
	if spec.Mode == labels.ModeExec || target.Connection == "" {
		ctx = sdk.WithExecHandler(ctx, New(cli, target.Container.ID))
	}
	if spec.Mode == labels.ModeExec {
		opts[sdk.OptionMode] = sdk.ModeExec
	}
	target.Options = opts
	return ctx, nil
}

// containerHost is the address the agent reaches the container at: the
// loopback for host networking, else its address on a network the agent's
// own container shares with it (when the agent runs in a container), else
// its first network address in name order, which a process on the Docker
// host itself can reach.
func containerHost(ins container.InspectResponse, agentNetworks map[string]bool) string {
	if ins.ContainerJSONBase != nil && ins.HostConfig != nil && ins.HostConfig.NetworkMode.IsHost() {
		return "127.0.0.1"
	}
	if ins.NetworkSettings == nil {
		return ""
	}
	names := make([]string, 0, len(ins.NetworkSettings.Networks))
	for n, ep := range ins.NetworkSettings.Networks {
		if ep != nil && ep.IPAddress != "" {
			names = append(names, n)
		}
	}
	sort.SliceStable(names, func(i, j int) bool {
		if a, b := agentNetworks[names[i]], agentNetworks[names[j]]; a != b {
			return a
		}
		return names[i] < names[j]
	})
	if len(names) == 0 {
		return ""
	}
	return ins.NetworkSettings.Networks[names[0]].IPAddress
}

// agentNetworks are the networks of the container the agent itself runs
// in, found by its hostname (Docker's default hostname is the container's
// short id); nil when the agent is not in a container or uses the host's
// network.
func agentNetworks(ctx context.Context, cli *client.Client) map[string]bool {
	host, err := os.Hostname()
	if err != nil || host == "" {
		return nil
	}
	self, err := cli.ContainerInspect(ctx, host)
	if err != nil || self.NetworkSettings == nil || !strings.HasPrefix(self.ID, host) {
		return nil
	}
	out := make(map[string]bool, len(self.NetworkSettings.Networks))
	for n := range self.NetworkSettings.Networks {
		out[n] = true
	}
	return out
}

// EnvMap turns Docker's "NAME=value" list into a map.
func EnvMap(env []string) map[string]string {
	out := make(map[string]string, len(env))
	for _, e := range env {
		k, v, _ := strings.Cut(e, "=")
		if k != "" {
			out[k] = v
		}
	}
	return out
}

var refRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// Expand replaces every ${VAR} in s with the variable's value in env. A
// variable the container does not define is an error naming it (never a
// value).
func Expand(s string, env map[string]string) (string, error) {
	var missing []string
	out := refRE.ReplaceAllStringFunc(s, func(m string) string {
		name := m[2 : len(m)-1]
		v, ok := env[name]
		if !ok {
			missing = append(missing, name)
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("backup.conn refers to %s, which the container's environment does not define: %w",
			strings.Join(missing, ", "), sdk.ErrInvalidArgument)
	}
	return out, nil
}

// DatabaseHint names the database a prepared target will dump, for object
// names and metadata: the path of its connection URI, or when the
// connection is derived, the database the official image's variables
// name. It is "" when unknown.
func DatabaseHint(typ string, t sdk.Target) string {
	if t.Database != "" {
		return t.Database
	}
	if t.Connection != "" {
		return labels.ConnDatabase(t.Connection)
	}
	env := t.ContainerEnv
	switch typ {
	case "postgres":
		if _, ok := env["POSTGRES_DB_FILE"]; ok {
			return ""
		}
		if db := env["POSTGRES_DB"]; db != "" {
			return db
		}
		if _, ok := env["POSTGRES_USER_FILE"]; ok {
			return ""
		}
		if u := env["POSTGRES_USER"]; u != "" {
			return u
		}
		return "postgres"
	case "mysql":
		for _, k := range []string{"MARIADB_DATABASE", "MYSQL_DATABASE"} {
			if db := env[k]; db != "" {
				return db
			}
		}
	}
	return ""
}
