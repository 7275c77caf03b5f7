package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labelbackup/label-backup/host/internal/itest"
)

// TestBackupTimeoutFreesSlot: a dump that stalls is cancelled after
// BACKUP_TIMEOUT_MINUTES (fractional: 0.05 min = 3 s), fails with an error
// saying it timed out, leaves no file behind, and frees its slot: with
// CONCURRENT_BACKUP_LIMIT=1 the backup queued behind it then runs and
// succeeds.
func TestBackupTimeoutFreesSlot(t *testing.T) {
	const timeout = 3 * time.Second // BACKUP_TIMEOUT_MINUTES=0.05
	never := "0 0 1 1 *"            // runs only when triggered
	stall := itest.UniqueName("lbe2e-timeout-stall")
	healthy := itest.UniqueName("lbe2e-timeout-ok")
	stallLabels := synthLabels(never)
	stallLabels["backup.conn"] = "synthetic://?size=67108864&stall_after=1048576"
	itest.RunLabeled(t, stall, stallLabels)
	itest.RunLabeled(t, healthy, synthLabels(never))
	agent, backups := startAgentWith(t, "60", map[string]string{
		"BACKUP_TIMEOUT_MINUTES":  "0.05",
		"CONCURRENT_BACKUP_LIMIT": "1",
	})
	waitJobs(t, agent, 10*time.Second, "both jobs", func(v itest.JobsView) bool {
		return hasJob(stall, "")(v) && hasJob(healthy, "")(v)
	})

	if code := agent.Trigger(t, stall); code != http.StatusAccepted {
		t.Fatalf("POST /jobs/%s/run: status %d", stall, code)
	}
	waitJobs(t, agent, 5*time.Second, "the stalled backup to hold the only slot", func(v itest.JobsView) bool {
		js := v.Named(stall)
		return v.Running >= 1 && len(js) == 1 && js[0].Busy
	})
	if code := agent.Trigger(t, healthy); code != http.StatusAccepted {
		t.Fatalf("POST /jobs/%s/run: status %d", healthy, code)
	}
	queuedAt := time.Now()
	_, v := waitJobs(t, agent, 2*time.Second, "the healthy backup to wait in the queue", func(v itest.JobsView) bool {
		js := v.Named(healthy)
		return v.Queued >= 1 && len(js) == 1 && js[0].Busy
	})
	if js := v.Named(healthy); len(js) != 1 || js[0].LastRun != nil {
		t.Errorf("healthy job while the slot is taken: %+v (want queued, not run)", js)
	}
	t.Logf("while the stalled backup runs: running %d, queued %d", v.Running, v.Queued)

	_, v = waitJobs(t, agent, timeout+10*time.Second, "the stalled backup to fail", func(v itest.JobsView) bool {
		js := v.Named(stall)
		return len(js) == 1 && js[0].LastRun != nil
	})
	failedAt := time.Now()
	run := v.Named(stall)[0].LastRun
	if run.Outcome != "failure" || !strings.Contains(run.Error, "timed out") {
		t.Errorf("stalled run: outcome %q error %q, want a failure saying it timed out", run.Outcome, run.Error)
	}
	if d := time.Duration(run.DurationSeconds * float64(time.Second)); d < timeout-100*time.Millisecond || d > timeout+5*time.Second {
		t.Errorf("stalled run lasted %v, want about %v", d, timeout)
	}
	t.Logf("stalled run: %.2f s, error %q", run.DurationSeconds, run.Error)
	// Nothing of it anywhere: not even a hidden temporary file.
	if entries, err := os.ReadDir(filepath.Join(backups, stall)); err == nil && len(entries) != 0 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("the timed-out run left files behind: %v", names)
	}

	_, v = waitJobs(t, agent, 10*time.Second, "the queued healthy backup to run", func(v itest.JobsView) bool {
		js := v.Named(healthy)
		return len(js) == 1 && js[0].LastRun != nil
	})
	hrun := v.Named(healthy)[0].LastRun
	if hrun.Outcome != "success" {
		t.Errorf("healthy run after the timeout: %q %q", hrun.Outcome, hrun.Error)
	}
	if !hrun.Started.After(run.Started.Add(timeout - 100*time.Millisecond)) {
		t.Errorf("healthy run started at %v, before the stalled run (started %v) gave its slot back", hrun.Started, run.Started)
	}
	t.Logf("healthy run waited %v in the queue; ran %v after the failure was visible", hrun.Started.Sub(queuedAt).Round(time.Millisecond),
		hrun.Started.Sub(failedAt).Round(time.Millisecond))
	if bs := itest.BackupsIn(t, backups, healthy); len(bs) != 1 {
		t.Errorf("healthy container: %d complete backups, want 1", len(bs))
	}
	v = agent.MustJobs(t)
	for _, name := range []string{stall, healthy} {
		if js := v.Named(name); len(js) != 1 || js[0].Busy {
			t.Errorf("after both runs, job %s = %+v, want one, idle", name, js)
		}
	}

	// The slot is really free: the stalled container times out again and
	// the healthy one runs again behind it.
	agent.Trigger(t, stall)
	waitJobs(t, agent, 5*time.Second, "the second stalled backup to run", func(v itest.JobsView) bool {
		js := v.Named(stall)
		return v.Running >= 1 && len(js) == 1 && js[0].Busy
	})
	agent.Trigger(t, healthy)
	waitJobs(t, agent, timeout+10*time.Second, "the second healthy backup", func(v itest.JobsView) bool {
		h, s := v.Named(healthy), v.Named(stall)
		return len(h) == 1 && h[0].LastRun != nil && h[0].LastRun.RunID != hrun.RunID && !h[0].Busy && len(s) == 1 && !s[0].Busy
	})
	v = agent.MustJobs(t)
	if r := v.Named(stall)[0].LastRun; r.RunID == run.RunID || !strings.Contains(r.Error, "timed out") {
		t.Errorf("second stalled run: %+v, want a new run that timed out", r)
	}
	if r := v.Named(healthy)[0].LastRun; r.Outcome != "success" {
		t.Errorf("second healthy run: %+v", r)
	}
	stopAgent(t, agent, backups)
}
