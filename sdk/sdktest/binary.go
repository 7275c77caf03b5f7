package sdktest

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/labelbackup/label-backup/sdk"
)

// Binary is a plugin binary built from source and running as its own
// process, launched exactly as the host launches plugins.
type Binary struct {
	// Path is the built executable.
	Path string
	// Info is what "<binary> describe" printed.
	Info   sdk.Info
	client *plugin.Client
	logs   *syncBuffer
	raw    any
}

// StartBinary builds the plugin whose main package is mainPkg (a go build
// package path relative to the test's directory, e.g.
// "./cmd/label-backup-plugin-mydb"), checks that its describe verb prints
// valid metadata naming a binary "label-backup-plugin-<name>", and starts
// it over go-plugin with LOG_LEVEL=debug. The process is killed when the
// test ends. Use Dumper or Sink for the client, Logs for what it logged.
func StartBinary(t testing.TB, mainPkg string) *Binary {
	t.Helper()
	dir := t.TempDir()
	tmp := filepath.Join(dir, "plugin")
	if out, err := exec.Command("go", "build", "-o", tmp, mainPkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", mainPkg, err, out)
	}
	out, err := exec.Command(tmp, "describe").Output()
	if err != nil {
		t.Fatalf("%s describe: %v", mainPkg, err)
	}
	b := &Binary{logs: &syncBuffer{}}
	if err := json.Unmarshal(out, &b.Info); err != nil {
		t.Fatalf("describe printed %q: %v", out, err)
	}
	if b.Info.Name == "" || b.Info.ProtocolVersion != sdk.ProtocolVersion {
		t.Fatalf("describe: %+v: want a name and protocol version %d", b.Info, sdk.ProtocolVersion)
	}
	// The host finds plugins by this name.
	b.Path = filepath.Join(dir, "label-backup-plugin-"+b.Info.Name)
	if err := os.Rename(tmp, b.Path); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(b.Path)
	cmd.Env = []string{"LOG_LEVEL=debug"}
	b.client = plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake(),
		VersionedPlugins: sdk.ClientPlugins(),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		GRPCDialOptions:  sdk.DialOptions(),
		Logger:           hclog.New(&hclog.LoggerOptions{Output: b.logs, Level: hclog.Trace, JSONFormat: true}),
	})
	t.Cleanup(b.client.Kill)
	rpc, err := b.client.Client()
	if err != nil {
		t.Fatalf("starting %s: %v", b.Path, err)
	}
	if b.raw, err = rpc.Dispense(sdk.DispenseName(b.Info.Kind)); err != nil {
		t.Fatalf("dispensing %s: %v", b.Info.Name, err)
	}
	return b
}

// Dumper is the client of a dumper plugin.
func (b *Binary) Dumper(t testing.TB) *sdk.DumperClient {
	t.Helper()
	c, ok := b.raw.(*sdk.DumperClient)
	if !ok {
		t.Fatalf("%s is a %s, not a dumper", b.Info.Name, b.Info.Kind)
	}
	return c
}

// Sink is the client of a sink plugin.
func (b *Binary) Sink(t testing.TB) *sdk.SinkClient {
	t.Helper()
	c, ok := b.raw.(*sdk.SinkClient)
	if !ok {
		t.Fatalf("%s is a %s, not a sink", b.Info.Name, b.Info.Kind)
	}
	return c
}

// PID is the plugin process's id, e.g. to measure its memory.
func (b *Binary) PID() int {
	if rc := b.client.ReattachConfig(); rc != nil {
		return rc.Pid
	}
	return 0
}

// Stop ends the plugin process (so its last log lines are in).
func (b *Binary) Stop() { b.client.Kill() }

// Logs returns what the plugin logged, as the host received it.
func (b *Binary) Logs() string { return b.logs.String() }

// AssertNoSecrets fails the test if any secret appears in the plugin's
// logs, raw or percent-encoded.
func (b *Binary) AssertNoSecrets(t testing.TB, secrets ...string) {
	t.Helper()
	logs := b.Logs()
	for _, s := range secrets {
		if s == "" {
			continue
		}
		for _, form := range []string{s, strings.ReplaceAll(s, "@", "%40")} {
			if strings.Contains(logs, form) {
				t.Errorf("plugin logs contain a secret (%d chars)", len(s))
			}
		}
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
