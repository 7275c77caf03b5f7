package itest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// DockerPIDFile is where dockerd records its process id.
const DockerPIDFile = "/var/run/docker.pid"

// DockerOK reports whether the engine answers `docker info` within 10 s.
func DockerOK() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, "docker", "info", "--format", "{{.ServerVersion}}").Run() == nil
}

// DaemonPID returns the pid of the running dockerd, from DockerPIDFile,
// after checking that the process is indeed dockerd.
func DaemonPID() (int, error) {
	raw, err := os.ReadFile(DockerPIDFile)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || pid <= 1 {
		return 0, fmt.Errorf("%s holds %q, not a pid", DockerPIDFile, raw)
	}
	comm, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
	if err != nil {
		return 0, fmt.Errorf("dockerd pid %d: %w", pid, err)
	}
	if c := strings.TrimSpace(string(comm)); c != "dockerd" {
		return 0, fmt.Errorf("pid %d from %s is %q, not dockerd", pid, DockerPIDFile, c)
	}
	return pid, nil
}

// ProcessAlive reports whether pid runs; a zombie counts as gone.
func ProcessAlive(pid int) bool {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	s := string(stat)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z"
}

// DockerUp runs scripts/docker-up.sh, which starts dockerd unless the
// engine already answers (it is idempotent), and returns its output.
func DockerUp() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(repoRoot(), "scripts", "docker-up.sh"))
	out, err := cmd.CombinedOutput()
	if err == nil {
		dockerReady.Store(true)
	}
	return string(out), err
}

// EnsureDockerUp is DockerUp reporting failure as a test error (not
// fatal, so that it can run in cleanups and defers).
func EnsureDockerUp(t testing.TB) {
	t.Helper()
	if out, err := DockerUp(); err != nil {
		t.Errorf("itest: scripts/docker-up.sh: %v\n%s", err, out)
	}
}
