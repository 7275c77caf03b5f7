package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/labelbackup/label-backup/host/internal/itest"
)

type jobsView struct {
	Jobs []struct {
		ContainerName string `json:"container_name"`
		Busy          bool   `json:"busy"`
		LastRun       *struct {
			Outcome string `json:"outcome"`
			Error   string `json:"error"`
			Object  string `json:"object"`
		} `json:"last_run"`
	} `json:"jobs"`
}

func lastRuns(t *testing.T, a *itest.Agent) map[string]string {
	var v jobsView
	a.GetJSON(t, "/jobs", &v)
	out := map[string]string{}
	for _, j := range v.Jobs {
		if j.LastRun != nil {
			out[j.ContainerName] = j.LastRun.Outcome + ": " + j.LastRun.Error
		}
	}
	return out
}

// TestPluginCrashFailsOnlyThatRun: a dumper process that dies mid-stream
// fails its own backup, with an error that says so, leaves nothing behind,
// and neither the agent nor another container's backup notices.
func TestPluginCrashFailsOnlyThatRun(t *testing.T) {
	crashing := startLabeled(t, "lbe2e-crash", map[string]string{
		"backup.enabled": "true",
		"backup.type":    "synthetic",
		"backup.cron":    "*/2 * * * * *",
		"backup.conn":    "synthetic://?size=67108864&crash_after=8388608",
	})
	healthy := startLabeled(t, "lbe2e-healthy", map[string]string{
		"backup.enabled": "true",
		"backup.type":    "synthetic",
		"backup.cron":    "*/2 * * * * *",
		"backup.conn":    "synthetic://?size=4194304",
	})
	backups := filepath.Join(t.TempDir(), "backups")
	agent := itest.StartAgent(t, map[string]string{"LOCAL_BACKUP_PATH": backups})

	var runs map[string]string
	itest.WaitFor(t, 30*time.Second, "both containers to have run", func() bool {
		runs = lastRuns(t, agent)
		return runs[crashing] != "" && strings.HasPrefix(runs[healthy], "success")
	})
	if !strings.HasPrefix(runs[crashing], "failure") || !strings.Contains(runs[crashing], "exited unexpectedly") {
		t.Errorf("crashing container's last run = %q, want a failure naming the plugin crash", runs[crashing])
	}
	if exited, err := agent.Exited(); exited {
		t.Fatalf("agent exited: %v", err)
	}
	// ReadDir, not Glob: a leftover temporary file starts with a dot.
	if left, _ := os.ReadDir(filepath.Join(backups, crashing)); len(left) != 0 {
		t.Errorf("the crashed run left %d files behind, first %s", len(left), left[0].Name())
	}
	healthyFiles, _ := filepath.Glob(filepath.Join(backups, healthy, "*.txt.gz"))
	if len(healthyFiles) == 0 {
		t.Error("the healthy container has no backup")
	}
}

// TestNoOrphansWhenAgentKilled: plugin processes die with the agent, even
// when it is killed with SIGKILL in the middle of a backup.
func TestNoOrphansWhenAgentKilled(t *testing.T) {
	stalled := startLabeled(t, "lbe2e-stall", map[string]string{
		"backup.enabled": "true",
		"backup.type":    "synthetic",
		"backup.cron":    "*/1 * * * * *",
		"backup.conn":    "synthetic://?size=67108864&stall_after=1048576",
	})
	backups := filepath.Join(t.TempDir(), "backups")
	agent := itest.StartAgent(t, map[string]string{"LOCAL_BACKUP_PATH": backups})

	var children []int
	itest.WaitFor(t, 30*time.Second, "a backup in progress with its plugin processes", func() bool {
		var v jobsView
		agent.GetJSON(t, "/jobs", &v)
		busy := false
		for _, j := range v.Jobs {
			busy = busy || (j.ContainerName == stalled && j.Busy)
		}
		children = childrenOf(agent.PID())
		return busy && len(children) >= 2
	})
	if err := syscall.Kill(agent.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	itest.WaitFor(t, 10*time.Second, "the plugin processes to exit", func() bool {
		for _, pid := range children {
			if alive(pid) {
				return false
			}
		}
		return true
	})
}

// childrenOf lists the processes whose parent is pid.
func childrenOf(pid int) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Fields after the parenthesised command: state, ppid, ...
		rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
		f := strings.Fields(rest)
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}

// alive reports whether pid still runs (zombies count as gone).
func alive(pid int) bool {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
	f := strings.Fields(rest)
	return len(f) > 0 && f[0] != "Z"
}
