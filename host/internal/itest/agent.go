package itest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Plugins are the plugin modules BuildBinaries builds, by name.
var Plugins = []string{"local", "mongodb", "mysql", "postgres", "redis", "s3"}

var build struct {
	once sync.Once
	dir  string
	err  error
}

// BuildBinaries builds the agent, every official plugin and the synthetic
// test dumper into one directory, once per test process, and returns it.
func BuildBinaries(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		build.dir, build.err = os.MkdirTemp("", "lb-bin-")
		if build.err != nil {
			return
		}
		root := repoRoot()
		targets := [][2]string{{filepath.Join(root, "host"), "./cmd/label-backup"}}
		for _, p := range Plugins {
			targets = append(targets, [2]string{filepath.Join(root, "plugins", p), "./cmd/label-backup-plugin-" + p})
		}
		// The benchmark dumper doubles as a controllable crashing or
		// stalling plugin in failure tests.
		targets = append(targets, [2]string{filepath.Join(root, "host"), "./internal/synthetic/cmd/label-backup-plugin-synthetic"})
		for _, tg := range targets {
			cmd := exec.Command("go", "build", "-o", build.dir+"/", tg[1])
			cmd.Dir = tg[0]
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				build.err = fmt.Errorf("go build %s in %s: %v\n%s", tg[1], tg[0], err, out)
				return
			}
		}
	})
	if build.err != nil {
		t.Fatalf("itest: building binaries: %v", build.err)
	}
	return build.dir
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	// this file is host/internal/itest/agent.go
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}

// Agent is a running label-backup agent process.
type Agent struct {
	URL  string
	cmd  *exec.Cmd
	logs *syncBuffer
	done chan struct{}
	err  error
}

// StartAgent runs the agent from BuildBinaries with env added to a minimal
// environment (PLUGIN_DIR and HTTP_ADDR are set for you), and stops it when
// the test ends. Its logs are printed when the test fails.
func StartAgent(t testing.TB, env map[string]string) *Agent {
	t.Helper()
	bin := BuildBinaries(t)
	port := FreePort(t)
	a := &Agent{URL: fmt.Sprintf("http://127.0.0.1:%d", port), logs: &syncBuffer{}, done: make(chan struct{})}
	a.cmd = exec.Command(filepath.Join(bin, "label-backup"))
	a.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"PLUGIN_DIR=" + bin, fmt.Sprintf("HTTP_ADDR=127.0.0.1:%d", port), "LOG_LEVEL=debug"}
	for k, v := range env {
		a.cmd.Env = append(a.cmd.Env, k+"="+v)
	}
	a.cmd.Stdout, a.cmd.Stderr = a.logs, a.logs
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := a.cmd.Start(); err != nil {
		t.Fatalf("itest: starting agent: %v", err)
	}
	go func() { a.err = a.cmd.Wait(); close(a.done) }()
	t.Cleanup(func() {
		a.Stop(t)
		if t.Failed() {
			t.Logf("agent logs:\n%s", a.Logs())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(a.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return a
			}
		}
		select {
		case <-a.done:
			t.Fatalf("itest: agent exited at start-up: %v\n%s", a.err, a.Logs())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("itest: agent did not answer /healthz within 20s\n%s", a.Logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Logs returns everything the agent printed so far.
func (a *Agent) Logs() string { return a.logs.String() }

// Stop sends SIGTERM and waits up to 15 s for the agent to exit; it returns
// how long the exit took.
func (a *Agent) Stop(t testing.TB) time.Duration {
	start := time.Now()
	select {
	case <-a.done:
		return 0
	default:
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(15 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.done
		t.Errorf("itest: agent did not exit within 15s of SIGTERM")
	}
	return time.Since(start)
}

// Exited reports whether the agent process has ended, and how.
func (a *Agent) Exited() (bool, error) {
	select {
	case <-a.done:
		return true, a.err
	default:
		return false, nil
	}
}

// GetJSON fetches path from the agent's API and decodes it into v,
// returning the status code.
func (a *Agent) GetJSON(t testing.TB, path string, v any) int {
	t.Helper()
	resp, err := http.Get(a.URL + path)
	if err != nil {
		t.Fatalf("itest: GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	if v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("itest: GET %s: decoding: %v", path, err)
		}
	}
	return resp.StatusCode
}

// WaitFor polls cond every 200 ms until it returns true or timeout passes.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("itest: timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer safe for the agent's concurrent writers.
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
	return strings.Clone(b.buf.String())
}

// PID is the agent's process id.
func (a *Agent) PID() int { return a.cmd.Process.Pid }
