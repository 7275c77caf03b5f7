// Package enginerestart holds the end-to-end test that restarts the Docker
// engine under a running agent. It has a package of its own because it stops
// the shared engine: nothing else that uses Docker may run meanwhile (the
// test script runs packages one at a time, with go test -p 1), and nothing
// in this package runs in parallel.
package enginerestart

import (
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/labelbackup/label-backup/host/internal/itest"
)

func synthLabels() map[string]string {
	return map[string]string{
		"backup.enabled": "true",
		"backup.type":    "synthetic",
		"backup.cron":    "*/1 * * * * *",
		"backup.conn":    "synthetic://?size=65536",
	}
}

func waitJobs(t *testing.T, a *itest.Agent, timeout time.Duration, what string, cond func(itest.JobsView) bool) (time.Duration, itest.JobsView) {
	t.Helper()
	start := time.Now()
	for {
		v, err := a.Jobs()
		if err == nil && cond(v) {
			return time.Since(start), v
		}
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %v waiting for %s; last /jobs: %+v (err %v)", timeout, what, v, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func jobID(v itest.JobsView, name string) string {
	js := v.Named(name)
	if len(js) != 1 {
		return ""
	}
	return js[0].ContainerID
}

// TestDockerEngineRestart stops dockerd under a running agent and starts it
// again. Meanwhile the agent keeps running and answering /healthz; once the
// engine is back the job set is rebuilt from a fresh listing: a container
// the restart stopped (no restart policy) is dropped, one with
// --restart=always is scheduled again, and one started after the restart
// is scheduled within the reconnect backoff.
func TestDockerEngineRestart(t *testing.T) {
	// Whatever happens, leave a running engine behind: the deferred call
	// runs before the cleanups (which remove containers through the
	// engine), the cleanup is a last resort.
	t.Cleanup(func() { itest.EnsureDockerUp(t) })
	defer itest.EnsureDockerUp(t)
	itest.RequireDocker(t)

	if others := itest.Docker(t, "ps", "--format", "{{.Names}}"); others != "" {
		t.Logf("note: restarting the engine stops these running containers too: %s", strings.ReplaceAll(others, "\n", ", "))
	}

	gone := itest.UniqueName("lbe2e-restart-gone")
	back := itest.UniqueName("lbe2e-restart-always")
	later := itest.UniqueName("lbe2e-restart-later")
	goneID := itest.RunLabeled(t, gone, synthLabels(), "--stop-timeout", "2")
	backID := itest.RunLabeled(t, back, synthLabels(), "--stop-timeout", "2", "--restart", "always")
	itest.RemoveOnCleanup(t, later)

	backups := filepath.Join(t.TempDir(), "backups")
	agent := itest.StartAgent(t, map[string]string{"LOCAL_BACKUP_PATH": backups, "RECONCILE_INTERVAL_SECONDS": "2"})
	waitJobs(t, agent, 10*time.Second, "both jobs", func(v itest.JobsView) bool {
		return jobID(v, gone) == goneID && jobID(v, back) == backID
	})
	itest.WaitFor(t, 15*time.Second, "a backup of each container", func() bool {
		return len(itest.BackupsIn(t, backups, gone)) > 0 && len(itest.BackupsIn(t, backups, back)) > 0
	})

	// Stop the engine.
	pid, err := itest.DaemonPID()
	if err != nil {
		t.Fatalf("finding dockerd: %v", err)
	}
	stopAt := time.Now()
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM to dockerd (pid %d): %v", pid, err)
	}
	itest.WaitFor(t, 60*time.Second, "dockerd to exit", func() bool { return !itest.ProcessAlive(pid) })
	if itest.DockerOK() {
		t.Fatal("docker info still answers after dockerd exited")
	}
	t.Logf("dockerd (pid %d) stopped in %v", pid, time.Since(stopAt).Round(time.Millisecond))

	// The engine stays down for a while: long enough for a few failed
	// reconnects (1 s, 2 s, 4 s backoff); the agent must ride it out.
	downUntil := time.Now().Add(6 * time.Second)
	healthy, polls := 0, 0
	for time.Now().Before(downUntil) {
		polls++
		if err := agent.Healthz(); err == nil {
			healthy++
		} else {
			t.Errorf("/healthz while the engine is down: %v", err)
		}
		if _, err := agent.Jobs(); err != nil {
			t.Errorf("/jobs while the engine is down: %v", err)
		}
		if exited, err := agent.Exited(); exited {
			t.Fatalf("the agent exited while the engine was down: %v", err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("/healthz answered %d of %d times while the engine was down", healthy, polls)
	down := agent.MustJobs(t)
	t.Logf("jobs while the engine was down: %d (%s still listed: %v)", len(down.Jobs), gone, len(down.Named(gone)) == 1)
	if !strings.Contains(agent.Logs(), "docker engine unreachable") {
		t.Error("the agent did not log that the engine is unreachable")
	}

	// Start it again.
	out, err := itest.DockerUp()
	if err != nil {
		t.Fatalf("scripts/docker-up.sh: %v\n%s", err, out)
	}
	upAt := time.Now()
	t.Logf("engine down for %v in all", upAt.Sub(stopAt).Round(time.Millisecond))
	if state := itest.Docker(t, "inspect", "--format", "{{.State.Running}}", gone); state != "false" {
		t.Fatalf("premise broken: %s (no restart policy) is running after the engine restart", gone)
	}
	laterID := itest.Docker(t, append([]string{"run", "-d"}, itest.LabeledArgs(t, later, synthLabels(), "--stop-timeout", "2")...)...)
	laterAt := time.Now()

	rebuilt, v := waitJobs(t, agent, 45*time.Second, "the job set rebuilt after the restart", func(v itest.JobsView) bool {
		return len(v.Named(gone)) == 0 && jobID(v, back) == backID && jobID(v, later) == laterID
	})
	sinceUp := laterAt.Add(rebuilt).Sub(upAt)
	t.Logf("job set rebuilt %v after docker-up.sh returned (%v after the new container started)",
		sinceUp.Round(time.Millisecond), rebuilt.Round(time.Millisecond))
	if sinceUp > 35*time.Second {
		t.Errorf("rebuilding the job set took %v after the engine was back, more than the 30 s backoff ceiling allows", sinceUp)
	}
	if len(v.WithID(goneID)) != 0 {
		t.Errorf("the stopped container still has a job: %+v", v.WithID(goneID))
	}
	if n := strings.Count(agent.Logs(), "connected to the docker engine"); n != 2 {
		t.Errorf("the agent logged %d connections to the engine, want 2 (start and reconnect)", n)
	}

	// Backups go on: the restarted and the new container are backed up;
	// the stopped one is not.
	after := time.Now()
	itest.WaitFor(t, 15*time.Second, "backups of the restarted and the new container", func() bool {
		return countAfter(itest.BackupsIn(t, backups, back), after) > 0 && countAfter(itest.BackupsIn(t, backups, later), after) > 0
	})
	if n := countAfter(itest.BackupsIn(t, backups, gone), after); n != 0 {
		t.Errorf("%d backups of the stopped container started after the job set was rebuilt", n)
	}
	if code := agent.GetJSON(t, "/healthz", nil); code != http.StatusOK {
		t.Errorf("/healthz after the restart: %d", code)
	}
	if exited, err := agent.Exited(); exited {
		t.Fatalf("agent exited: %v", err)
	}
	if took := agent.Stop(t); took > 10*time.Second {
		t.Errorf("agent took %v to stop", took)
	}
	itest.CheckNoPartials(t, backups)
}

func countAfter(bs []itest.Backup, ts time.Time) int {
	n := 0
	for _, b := range bs {
		if b.Meta.Timestamp.After(ts) {
			n++
		}
	}
	return n
}
