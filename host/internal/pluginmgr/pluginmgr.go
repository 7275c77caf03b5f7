// Package pluginmgr finds plugin binaries, learns what each one is, and
// launches them over go-plugin. Each use gets its own process: a plugin
// that crashes fails only the run that was using it.
package pluginmgr

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/labelbackup/label-backup/sdk"
)

// BinaryPrefix starts the file name of every plugin binary.
const BinaryPrefix = "label-backup-plugin-"

// ErrNoPlugin means no installed plugin has the requested name and kind.
var ErrNoPlugin = errors.New("no such plugin")

// Entry is one installed plugin.
type Entry struct {
	Path string
	Info sdk.Info
}

// Manager holds the catalog of installed plugins.
type Manager struct {
	dir    string
	logger hclog.Logger
	env    []string

	mu      sync.RWMutex
	entries map[sdk.Kind]map[string]Entry
	broken  map[string]string // file name → why it was rejected
}

// New scans dir and describes every plugin binary in it. Broken binaries
// are logged and left out; they never stop the agent.
func New(ctx context.Context, dir string, logger hclog.Logger) (*Manager, error) {
	m := &Manager{dir: dir, logger: logger, env: pluginEnv()}
	if err := m.Rescan(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

// pluginEnv is the environment plugins start with: the host's environment
// carries secrets (S3 keys, webhook secrets) that no plugin needs.
func pluginEnv() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "LOG_LEVEL"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// Rescan rebuilds the catalog from the plugin directory.
func (m *Manager) Rescan(ctx context.Context) error {
	files, err := os.ReadDir(m.dir)
	if err != nil {
		return fmt.Errorf("reading plugin directory: %w", err)
	}
	entries := map[sdk.Kind]map[string]Entry{sdk.KindDumper: {}, sdk.KindSink: {}}
	broken := map[string]string{}
	for _, f := range files {
		name := f.Name()
		if !strings.HasPrefix(name, BinaryPrefix) || f.IsDir() {
			continue
		}
		path := filepath.Join(m.dir, name)
		info, err := describeBinary(ctx, path, m.env)
		if err == nil {
			err = checkInfo(name, info)
		}
		if err != nil {
			broken[name] = err.Error()
			m.logger.Error("plugin rejected", "file", name, "error", err)
			continue
		}
		entries[info.Kind][info.Name] = Entry{Path: path, Info: info}
		m.logger.Debug("plugin found", "name", info.Name, "kind", info.Kind, "version", info.Version)
	}
	m.mu.Lock()
	m.entries, m.broken = entries, broken
	m.mu.Unlock()
	return nil
}

func checkInfo(file string, info sdk.Info) error {
	if want := strings.TrimPrefix(file, BinaryPrefix); info.Name != want {
		return fmt.Errorf("binary %s describes itself as %q, want %q", file, info.Name, want)
	}
	if info.Kind != sdk.KindDumper && info.Kind != sdk.KindSink {
		return fmt.Errorf("binary %s has unknown kind %q", file, info.Kind)
	}
	if info.ProtocolVersion != sdk.ProtocolVersion {
		return fmt.Errorf("binary %s speaks protocol %d, this agent speaks %d", file, info.ProtocolVersion, sdk.ProtocolVersion)
	}
	return nil
}

// describeBinary runs "<binary> describe", which needs no handshake.
func describeBinary(ctx context.Context, path string, env []string) (sdk.Info, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "describe")
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return sdk.Info{}, fmt.Errorf("running %s describe: %w (%s)", filepath.Base(path), err, strings.TrimSpace(stderr.String()))
	}
	var info sdk.Info
	if err := json.Unmarshal(stdout.Bytes(), &info); err != nil {
		return sdk.Info{}, fmt.Errorf("%s describe printed no valid JSON: %w", filepath.Base(path), err)
	}
	return info, nil
}

// List returns every installed plugin, sorted by kind and name, and the
// binaries that were rejected with the reason.
func (m *Manager) List() ([]Entry, map[string]string) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []Entry
	for _, byName := range m.entries {
		for _, e := range byName {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Info.Kind != out[j].Info.Kind {
			return out[i].Info.Kind < out[j].Info.Kind
		}
		return out[i].Info.Name < out[j].Info.Name
	})
	broken := make(map[string]string, len(m.broken))
	for k, v := range m.broken {
		broken[k] = v
	}
	return out, broken
}

// Lookup finds an installed plugin.
func (m *Manager) Lookup(kind sdk.Kind, name string) (Entry, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	e, ok := m.entries[kind][name]
	if !ok {
		return Entry{}, fmt.Errorf("%s plugin %q (looked for %s%s in %s): %w", kind, name, BinaryPrefix, name, m.dir, ErrNoPlugin)
	}
	return e, nil
}

// Process is one running plugin process.
type Process struct {
	Entry
	client *plugin.Client
}

// Close stops the plugin process.
func (p *Process) Close() { p.client.Kill() }

// Explain adds "the plugin process died" to err when that is what happened,
// so a crash reads as a crash and not as a network error. A dead plugin's
// calls fail as unavailable, sometimes before go-plugin has noticed the
// exit: such errors get a moment for the exit to show.
func (p *Process) Explain(err error) error {
	if err == nil {
		return nil
	}
	deadline := time.Now().Add(time.Second)
	for !p.client.Exited() {
		if !errors.Is(err, sdk.ErrUnavailable) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s plugin %q exited unexpectedly: %w", p.Info.Kind, p.Info.Name, err)
}

// Dumper is a running dumper plugin.
type Dumper struct {
	*Process
	*sdk.DumperClient
}

// Sink is a running sink plugin.
type Sink struct {
	*Process
	*sdk.SinkClient
}

// StartDumper launches the dumper plugin called name.
func (m *Manager) StartDumper(ctx context.Context, name string) (*Dumper, error) {
	p, raw, err := m.start(ctx, sdk.KindDumper, name)
	if err != nil {
		return nil, err
	}
	c, ok := raw.(*sdk.DumperClient)
	if !ok {
		p.Close()
		return nil, fmt.Errorf("plugin %q dispensed %T, not a dumper", name, raw)
	}
	return &Dumper{Process: p, DumperClient: c}, nil
}

// StartSink launches the sink plugin called name and configures it.
func (m *Manager) StartSink(ctx context.Context, name string, settings map[string]string) (*Sink, error) {
	p, raw, err := m.start(ctx, sdk.KindSink, name)
	if err != nil {
		return nil, err
	}
	c, ok := raw.(*sdk.SinkClient)
	if !ok {
		p.Close()
		return nil, fmt.Errorf("plugin %q dispensed %T, not a sink", name, raw)
	}
	if err := c.Configure(ctx, settings); err != nil {
		p.Close()
		return nil, fmt.Errorf("configuring sink %q: %w", name, err)
	}
	return &Sink{Process: p, SinkClient: c}, nil
}

func (m *Manager) start(ctx context.Context, kind sdk.Kind, name string) (*Process, any, error) {
	e, err := m.Lookup(kind, name)
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(e.Path)
	cmd.Env = m.env
	// The kernel kills the plugin if the agent dies, even by SIGKILL: no
	// orphaned plugins.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake(),
		VersionedPlugins: sdk.ClientPlugins(),
		Cmd:              cmd,
		SkipHostEnv:      true,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           quietLifecycle(m.logger.Named(name)),
		StartTimeout:     30 * time.Second,
		GRPCDialOptions:  sdk.DialOptions(),
	})
	rpc, err := client.Client()
	if err != nil {
		client.Kill()
		return nil, nil, fmt.Errorf("starting %s plugin %q: %w", kind, name, err)
	}
	raw, err := rpc.Dispense(sdk.DispenseName(kind))
	if err != nil {
		client.Kill()
		return nil, nil, fmt.Errorf("dispensing %s plugin %q: %w", kind, name, err)
	}
	if err := ctx.Err(); err != nil {
		client.Kill()
		return nil, nil, err
	}
	return &Process{Entry: e, client: client}, raw, nil
}
