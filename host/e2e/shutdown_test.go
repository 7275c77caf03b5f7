package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/labelbackup/label-backup/host/internal/itest"
)

// TestGracefulShutdown: on SIGTERM a backup still running gets the grace
// period, is then cancelled cleanly (nothing partial visible, its plugin
// processes gone), its receiver gets a failure notification, and the agent
// exits well within Docker's 10 s stop timeout.
func TestGracefulShutdown(t *testing.T) {
	var mu sync.Mutex
	var failures []map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var m map[string]any
		json.Unmarshal(body, &m)
		if m["success"] == false {
			mu.Lock()
			failures = append(failures, m)
			mu.Unlock()
		}
	}))
	defer srv.Close()
	c := startLabeled(t, "lbe2e-shutdown", map[string]string{
		"backup.enabled": "true", "backup.type": "synthetic", "backup.cron": "*/1 * * * * *",
		"backup.conn": "synthetic://?size=67108864&stall_after=1048576",
	})
	backups := filepath.Join(t.TempDir(), "backups")
	agent := itest.StartAgent(t, map[string]string{
		"LOCAL_BACKUP_PATH": backups, "WEBHOOK_URL": srv.URL, "SHUTDOWN_GRACE_SECONDS": "2",
	})
	var children []int
	itest.WaitFor(t, 20*time.Second, "a backup in progress", func() bool {
		var v jobsView
		agent.GetJSON(t, "/jobs", &v)
		children = childrenOf(agent.PID())
		for _, j := range v.Jobs {
			if j.ContainerName == c && j.Busy {
				return len(children) >= 2
			}
		}
		return false
	})
	start := time.Now()
	if err := syscall.Kill(agent.PID(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	itest.WaitFor(t, 10*time.Second, "the agent to exit", func() bool { exited, _ := agent.Exited(); return exited })
	took := time.Since(start)
	if took < 2*time.Second || took > 6*time.Second {
		t.Errorf("exit took %v: want the 2 s grace, then a prompt exit", took)
	}
	if exited, err := agent.Exited(); exited && err != nil {
		t.Errorf("agent exited with %v", err)
	}
	for _, pid := range children {
		if alive(pid) {
			t.Errorf("plugin process %d survived the agent", pid)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(failures) == 0 {
		t.Fatal("no failure notification for the cancelled backup")
	}
	var mine []string
	for _, f := range failures {
		if f["container_name"] == c {
			msg, _ := f["error"].(string)
			mine = append(mine, msg)
		}
	}
	if len(mine) == 0 || !strings.Contains(mine[len(mine)-1], "cancel") {
		t.Errorf("failure notifications for %s = %q, want a cancellation", c, mine)
	}
	if left, _ := os.ReadDir(filepath.Join(backups, c)); len(left) != 0 {
		t.Errorf("the cancelled backup left %d files, first %s", len(left), left[0].Name())
	}
}

// TestFreshnessEndpoint: /freshness lists each container with when its next
// success is due, and 200 while all are fresh.
func TestFreshnessEndpoint(t *testing.T) {
	c := startLabeled(t, "lbe2e-fresh", map[string]string{
		"backup.enabled": "true", "backup.type": "synthetic", "backup.cron": "*/1 * * * * *",
		"backup.conn": "synthetic://?size=1024",
	})
	agent := itest.StartAgent(t, map[string]string{"LOCAL_BACKUP_PATH": filepath.Join(t.TempDir(), "b")})
	var v struct {
		Stale      []string `json:"stale"`
		Containers []struct {
			ContainerName string     `json:"container_name"`
			LastSuccess   *time.Time `json:"last_success"`
			DueBy         time.Time  `json:"due_by"`
			Stale         bool       `json:"stale"`
		} `json:"containers"`
	}
	var idx int
	itest.WaitFor(t, 20*time.Second, "a success in /freshness", func() bool {
		agent.GetJSON(t, "/freshness", &v)
		for i, f := range v.Containers {
			if f.ContainerName == c && f.LastSuccess != nil {
				idx = i
				return true
			}
		}
		return false
	})
	f := v.Containers[idx]
	if f.Stale || !f.DueBy.After(*f.LastSuccess) {
		t.Errorf("freshness of %s = %+v", c, f)
	}
}
