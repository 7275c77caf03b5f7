// Package itest runs real database servers in labeled Docker containers for
// integration tests. Only tests import it.
//
// No image registry is reachable from the machines this project is tested on,
// so the containers use a tiny imported image (labelbackup-itest/hostusr:1,
// built by scripts/docker-up.sh) and bind-mount the host's /usr read-only:
// they run the server binaries that scripts/install-deps.sh installed on the
// host. Containers use host networking and listen on 127.0.0.1 only.
//
// The helpers shell out to the docker CLI rather than using the Docker SDK:
// it keeps this package standard-library only, and the commands it runs can
// be pasted into a shell when a test needs debugging.
//
// Every container gets the label labelbackup.itest=1, so
// scripts/docker-down.sh can remove leftovers of crashed test runs without
// touching anything else. Set LB_ITEST_KEEP=1 to keep containers and data
// directories after a test for inspection.
package itest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const (
	// Image is the rootfs image built by scripts/docker-up.sh.
	Image = "labelbackup-itest/hostusr:1"
	// LabelKey marks every container started by this package (value "1").
	LabelKey = "labelbackup.itest"
	// TestLabelKey records the name of the test that started a container.
	TestLabelKey = "labelbackup.itest.test"

	// cmdTimeout bounds every single docker CLI call, so a wedged engine
	// fails the test instead of hanging it until the go test timeout.
	cmdTimeout = 2 * time.Minute
)

// StateDir returns the directory the scripts and tests keep state in:
// $LB_STATE, or /var/tmp/label-backup (same rule as scripts/lib.sh).
func StateDir() string {
	if d := os.Getenv("LB_STATE"); d != "" {
		return d
	}
	return "/var/tmp/label-backup"
}

// keep reports whether LB_ITEST_KEEP asks to keep containers and data.
func keep() bool {
	v := os.Getenv("LB_ITEST_KEEP")
	return v != "" && v != "0"
}

var dockerReady atomic.Bool

// RequireDocker fails the test (it never skips it) unless the docker engine
// answers and the test image exists. Successful checks are cached per
// process.
func RequireDocker(t testing.TB) {
	t.Helper()
	if dockerReady.Load() {
		return
	}
	const hint = "start it with: sudo bash scripts/install-deps.sh && sudo bash scripts/docker-up.sh"
	if _, err := exec.LookPath("docker"); err != nil {
		t.Fatalf("itest: docker CLI not found on PATH; %s", hint)
	}
	if _, err := docker(nil, nil, "info", "--format", "{{.ServerVersion}}"); err != nil {
		t.Fatalf("itest: docker engine not reachable: %v\n%s", err, hint)
	}
	if _, err := docker(nil, nil, "image", "inspect", "--format", "{{.Id}}", Image); err != nil {
		t.Fatalf("itest: image %s missing: %v\n%s", Image, err, hint)
	}
	dockerReady.Store(true)
}

// docker runs the docker CLI with optional stdin and extra environment
// variables and returns its stdout. The error carries the command line and
// its stderr.
func docker(stdin io.Reader, env []string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdin = stdin
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("timed out after %v", cmdTimeout)
		}
		return stdout.String(), fmt.Errorf("docker %s: %w: %s",
			strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Docker runs the docker CLI and returns its trimmed stdout; it fails the
// test when the command fails.
func Docker(t testing.TB, args ...string) string {
	t.Helper()
	out, err := docker(nil, nil, args...)
	if err != nil {
		t.Fatalf("itest: %v", err)
	}
	return strings.TrimSpace(out)
}

// Stop stops a container (10 s grace period before SIGKILL).
func Stop(t testing.TB, name string) {
	t.Helper()
	Docker(t, "stop", "--time", "10", name)
}

// Remove force-removes a container; a container that does not exist is not
// an error.
func Remove(t testing.TB, name string) {
	t.Helper()
	if err := remove(name); err != nil {
		t.Fatalf("itest: %v", err)
	}
}

func remove(name string) error {
	_, err := docker(nil, nil, "rm", "--force", "--volumes", name)
	if err != nil && strings.Contains(err.Error(), "No such container") {
		return nil
	}
	return err
}

// removeStale removes a leftover container of an earlier, crashed run that
// has the same name, but only if it carries our label: a fixed container
// name must not make every later run fail, nor may it delete someone else's
// container.
func removeStale(t testing.TB, name string) {
	t.Helper()
	v, err := docker(nil, nil, "container", "inspect", "--format",
		fmt.Sprintf("{{index .Config.Labels %q}}", LabelKey), name)
	if err != nil {
		return // no such container
	}
	if strings.TrimSpace(v) != "1" {
		t.Fatalf("itest: a container named %q exists and was not started by itest", name)
	}
	t.Logf("itest: removing leftover container %s", name)
	Remove(t, name)
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("itest: FreePort: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// randomHex returns n random bytes, hex-encoded.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ids holds the numeric uid and gid of a system user.
type ids struct{ uid, gid int }

func (i ids) String() string { return fmt.Sprintf("%d:%d", i.uid, i.gid) }

// lookupUser resolves a system user (postgres, mysql, redis). Their UIDs
// differ between machines, so they are never hard-coded.
func lookupUser(t testing.TB, name string) ids {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatalf("itest: user %q: %v (run scripts/install-deps.sh)", name, err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		t.Fatalf("itest: user %q has non-numeric uid/gid %q/%q", name, u.Uid, u.Gid)
	}
	return ids{uid, gid}
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// dataDir creates a fresh directory owned by owner (mode 0700) for a
// container to mount at /data, and removes it when the test ends.
//
// It lives under StateDir()/itest rather than t.TempDir(): the latter is
// created with mode 0700 and root-owned parents, which is fine for a bind
// mount but not for the database users should a test hand the path to a
// process on the host; the state dir is 0755 all the way down.
func dataDir(t testing.TB, owner ids) string {
	t.Helper()
	base := filepath.Join(StateDir(), "itest")
	if err := os.MkdirAll(base, 0o755); err != nil {
		t.Fatalf("itest: %v", err)
	}
	for _, d := range []string{StateDir(), base} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatalf("itest: %v", err)
		}
	}
	prefix := unsafeChars.ReplaceAllString(t.Name(), "_")
	if len(prefix) > 40 {
		prefix = prefix[:40]
	}
	dir, err := os.MkdirTemp(base, prefix+"-")
	if err != nil {
		t.Fatalf("itest: %v", err)
	}
	t.Cleanup(func() {
		if keep() {
			t.Logf("itest: LB_ITEST_KEEP set; keeping %s", dir)
			return
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("itest: removing %s: %v", dir, err)
		}
	})
	if err := os.Chown(dir, owner.uid, owner.gid); err != nil {
		t.Fatalf("itest: chown %s to %v (tests that start databases must run as root): %v", dir, owner, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatalf("itest: %v", err)
	}
	return dir
}

// labelArgs turns labels into sorted --label flags and appends the itest
// labels (last, so callers cannot override them).
func labelArgs(t testing.TB, labels map[string]string) []string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var args []string
	for _, k := range keys {
		args = append(args, "--label", k+"="+labels[k])
	}
	return append(args, "--label", LabelKey+"=1", "--label", TestLabelKey+"="+t.Name())
}

// removeOnCleanup removes the container when the test ends (unless
// LB_ITEST_KEEP is set); if the test failed, the container log is printed
// first.
func removeOnCleanup(t testing.TB, ref string) {
	t.Cleanup(func() {
		if t.Failed() {
			if out, err := exec.Command("docker", "logs", "--tail", "50", ref).CombinedOutput(); err == nil {
				t.Logf("itest: last log lines of %s:\n%s", ref, out)
			}
		}
		if keep() {
			t.Logf("itest: LB_ITEST_KEEP set; keeping container %s", ref)
			return
		}
		if err := remove(ref); err != nil {
			t.Errorf("itest: %v", err)
		}
	})
}

// waitReady polls probe (a command run with docker exec in the container)
// until it succeeds, the container stops, or timeout passes.
func waitReady(t testing.TB, name string, timeout time.Duration, probe ...string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for {
		_, lastErr = docker(nil, nil, append([]string{"exec", name}, probe...)...)
		if lastErr == nil {
			return
		}
		running, err := docker(nil, nil, "container", "inspect", "--format", "{{.State.Running}}", name)
		if err != nil || strings.TrimSpace(running) != "true" {
			logs, _ := exec.Command("docker", "logs", "--tail", "50", name).CombinedOutput()
			t.Fatalf("itest: container %s stopped before it was ready:\n%s", name, logs)
		}
		if time.Now().After(deadline) {
			t.Fatalf("itest: container %s not ready after %v: %v", name, timeout, lastErr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
