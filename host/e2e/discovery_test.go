package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labelbackup/label-backup/host/internal/itest"
)

// Tests of the promise "discovery and scheduling never lose, duplicate or
// leak a backup": the real agent against the real Docker engine, with the
// synthetic dumper (a small stream, produced in milliseconds) so that only
// discovery and scheduling are under test.

// synthSize keeps every backup tiny: these tests run many of them.
const synthSize = "65536"

// synthLabels are valid labels for a synthetic backup on cron.
func synthLabels(cron string) map[string]string {
	return map[string]string{
		"backup.enabled": "true",
		"backup.type":    "synthetic",
		"backup.cron":    cron,
		"backup.conn":    "synthetic://?size=" + synthSize,
	}
}

// everySecond is a 6-field cron firing every second.
const everySecond = "*/1 * * * * *"

// startAgentWith starts the agent with RECONCILE_INTERVAL_SECONDS=interval
// and a fresh backup directory, which it returns.
func startAgentWith(t *testing.T, interval string, env map[string]string) (*itest.Agent, string) {
	t.Helper()
	backups := filepath.Join(t.TempDir(), "backups")
	all := map[string]string{"LOCAL_BACKUP_PATH": backups, "RECONCILE_INTERVAL_SECONDS": interval}
	for k, v := range env {
		all[k] = v
	}
	return itest.StartAgent(t, all), backups
}

// waitJobs polls /jobs every 10 ms until cond holds, and returns how long
// that took and the matching answer.
func waitJobs(t *testing.T, a *itest.Agent, timeout time.Duration, what string, cond func(itest.JobsView) bool) (time.Duration, itest.JobsView) {
	t.Helper()
	start := time.Now()
	for {
		v, err := a.Jobs()
		if err == nil && cond(v) {
			return time.Since(start), v
		}
		if time.Since(start) > timeout {
			if exited, aerr := a.Exited(); exited {
				t.Fatalf("agent exited (%v) while waiting for %s", aerr, what)
			}
			t.Fatalf("timed out after %v waiting for %s; last /jobs: %+v (err %v)", timeout, what, v, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitBackups waits until dir (under root) holds at least n complete
// backups that satisfy keep, and returns them.
func waitBackups(t *testing.T, root, dir string, n int, timeout time.Duration, keep func(itest.Backup) bool) []itest.Backup {
	t.Helper()
	var got []itest.Backup
	itest.WaitFor(t, timeout, "complete backups in "+dir, func() bool {
		got = got[:0]
		for _, b := range itest.BackupsIn(t, root, dir) {
			if keep == nil || keep(b) {
				got = append(got, b)
			}
		}
		return len(got) >= n
	})
	return got
}

func hasJob(name, id string) func(itest.JobsView) bool {
	return func(v itest.JobsView) bool {
		js := v.Named(name)
		return len(js) == 1 && (id == "" || js[0].ContainerID == id)
	}
}

func noJob(name string) func(itest.JobsView) bool {
	return func(v itest.JobsView) bool { return len(v.Named(name)) == 0 }
}

// stopAgent stops the agent, checks it stopped promptly and left no partial
// file behind.
func stopAgent(t *testing.T, a *itest.Agent, backups string) {
	t.Helper()
	if exited, err := a.Exited(); exited {
		t.Fatalf("agent exited on its own: %v", err)
	}
	if took := a.Stop(t); took > 10*time.Second {
		t.Errorf("agent took %v to stop", took)
	}
	itest.CheckNoPartials(t, backups)
}

// startedAfter keeps backups whose run started after ts.
func startedAfter(ts time.Time) func(itest.Backup) bool {
	return func(b itest.Backup) bool { return b.Meta.Timestamp.After(ts) }
}

// TestStoppedContainersNotScheduledAtStartup: containers that exist but do
// not run when the agent starts (stopped, or created and never started) get
// no job; starting one schedules it at once, through the start event (the
// periodic reconcile is a minute away).
func TestStoppedContainersNotScheduledAtStartup(t *testing.T) {
	stopped := itest.UniqueName("lbe2e-stopped")
	created := itest.UniqueName("lbe2e-created")
	running := itest.UniqueName("lbe2e-running")
	itest.RunLabeled(t, stopped, synthLabels(everySecond))
	itest.Docker(t, "stop", stopped)
	itest.RemoveOnCleanup(t, created)
	itest.Docker(t, append([]string{"create"}, itest.LabeledArgs(t, created, synthLabels(everySecond))...)...)
	itest.RunLabeled(t, running, synthLabels(everySecond))

	agent, backups := startAgentWith(t, "60", nil)
	// The running container's job proves the first listing happened; that
	// listing is complete, so the others must be absent from it.
	_, v := waitJobs(t, agent, 10*time.Second, "the running container's job", hasJob(running, ""))
	for _, name := range []string{stopped, created} {
		if js := v.Named(name); len(js) != 0 {
			t.Errorf("not-running container %s is scheduled at start-up: %+v", name, js)
		}
		if rs := v.RejectedNamed(name); len(rs) != 0 {
			t.Errorf("not-running container %s is listed as rejected: %+v", name, rs)
		}
	}
	// A couple of cron ticks: still nothing for them, on disk either.
	waitBackups(t, backups, running, 2, 15*time.Second, nil)
	for _, name := range []string{stopped, created} {
		if bs := itest.BackupsIn(t, backups, name); len(bs) != 0 {
			t.Errorf("not-running container %s was backed up: %d backups", name, len(bs))
		}
	}

	stoppedID := itest.Docker(t, "inspect", "--format", "{{.Id}}", stopped)
	itest.Docker(t, "start", stopped)
	latency, _ := waitJobs(t, agent, 3*time.Second, "the started container's job", hasJob(stopped, stoppedID))
	t.Logf("latency from `docker start` returning to the job in /jobs: %v", latency)
	waitBackups(t, backups, stopped, 1, 15*time.Second, func(b itest.Backup) bool { return b.Meta.ContainerID == stoppedID })

	v = agent.MustJobs(t)
	if js := v.Named(created); len(js) != 0 {
		t.Errorf("never-started container %s got a job: %+v", created, js)
	}
	for _, name := range []string{running, stopped} {
		if js := v.Named(name); len(js) != 1 {
			t.Errorf("jobs for %s: %s, want one", name, describe(js))
		}
	}
	stopAgent(t, agent, backups)
}

// TestHangupKeepsJob: `docker kill -s HUP` sends a signal; the container
// keeps running, so its job must stay, with the same container ID, and its
// backups keep succeeding, across many reconciles.
func TestHangupKeepsJob(t *testing.T) {
	name := itest.UniqueName("lbe2e-hup")
	id := itest.RunLabeled(t, name, synthLabels(everySecond))
	agent, backups := startAgentWith(t, "1", nil)
	waitJobs(t, agent, 10*time.Second, "the job", hasJob(name, id))
	waitBackups(t, backups, name, 1, 15*time.Second, nil)

	var mu sync.Mutex
	var bad []string
	poller := itest.PollJobs(t, agent, 20*time.Millisecond, func(at time.Time, v itest.JobsView) {
		if js := v.Named(name); len(js) != 1 || js[0].ContainerID != id {
			mu.Lock()
			bad = append(bad, at.Format(time.StampMilli)+": "+describe(js))
			mu.Unlock()
		}
	})
	hup := time.Now()
	for i := 0; i < 3; i++ {
		itest.Docker(t, "kill", "--signal", "HUP", name)
		time.Sleep(300 * time.Millisecond)
	}
	// At least four reconcile intervals after the signals.
	time.Sleep(4 * time.Second)
	polls, errs := poller.Stop()
	if len(errs) != 0 {
		t.Errorf("/jobs failed %d times while polling: %v", len(errs), errs[0])
	}
	if polls < 50 {
		t.Errorf("only %d answers from /jobs while polling", polls)
	}
	if len(bad) != 0 {
		t.Errorf("the job of %s was missing or wrong in %d of %d answers after SIGHUP; first: %s", name, len(bad), polls, bad[0])
	}
	if running := itest.Docker(t, "inspect", "--format", "{{.State.Running}}", name); running != "true" {
		t.Fatalf("premise broken: container not running after SIGHUP (running=%s)", running)
	}
	after := waitBackups(t, backups, name, 2, 10*time.Second, startedAfter(hup))
	for _, b := range after {
		if b.Meta.ContainerID != id {
			t.Errorf("backup %s has container_id %s, want %s", b.Path, b.Meta.ContainerID, id)
		}
	}
	v := agent.MustJobs(t)
	if js := v.Named(name); len(js) != 1 || js[0].LastRun == nil || js[0].LastRun.Outcome != "success" {
		t.Errorf("job after SIGHUP = %s, want one job whose last run succeeded", describe(js))
	}
	if lines := logLines(agent, "backup unscheduled", name); len(lines) != 0 {
		t.Errorf("the agent unscheduled the job after SIGHUP:\n%s", strings.Join(lines, "\n"))
	}
	t.Logf("%d polls of /jobs, %d backups started after the first SIGHUP", polls, len(after))
	stopAgent(t, agent, backups)
}

// TestStopUnschedules: `docker stop` removes the job at once (by event; the
// periodic reconcile is a minute away) and no backup of the container
// starts afterwards.
func TestStopUnschedules(t *testing.T) {
	name := itest.UniqueName("lbe2e-stop")
	other := itest.UniqueName("lbe2e-stop-other")
	id := itest.RunLabeled(t, name, synthLabels(everySecond))
	itest.RunLabeled(t, other, synthLabels(everySecond))
	agent, backups := startAgentWith(t, "60", nil)
	waitJobs(t, agent, 10*time.Second, "the job", hasJob(name, id))
	waitBackups(t, backups, name, 1, 15*time.Second, nil)

	itest.Docker(t, "stop", name)
	latency, _ := waitJobs(t, agent, 3*time.Second, "the job to go", noJob(name))
	removed := time.Now()
	t.Logf("latency from `docker stop` returning to the job leaving /jobs: %v", latency)

	// A run started just before the removal may still finish; after that
	// nothing of the container may change on disk while the other
	// container goes on being backed up every second.
	time.Sleep(time.Second)
	files := dirList(t, filepath.Join(backups, name))
	waitBackups(t, backups, other, 3, 10*time.Second, startedAfter(time.Now()))
	if now := dirList(t, filepath.Join(backups, name)); now != files {
		t.Errorf("files of the stopped container changed after its job was removed:\nbefore: %s\nafter:  %s", files, now)
	}
	for _, b := range itest.BackupsIn(t, backups, name) {
		if b.Meta.Timestamp.After(removed) {
			t.Errorf("backup %s of the stopped container started at %v, after its job was removed (%v)",
				filepath.Base(b.Path), b.Meta.Timestamp, removed)
		}
	}
	v := agent.MustJobs(t)
	if len(v.Named(name)) != 0 || len(v.WithID(id)) != 0 {
		t.Errorf("stopped container still has a job: %+v", v.Jobs)
	}
	if lines := logLines(agent, "backup unscheduled", name); len(lines) != 1 {
		t.Errorf("the log says %d times that the job was unscheduled, want once:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	stopAgent(t, agent, backups)
}

// TestRecreateKeepsOneJob: a container removed and run again under the same
// name (a new ID) ends with exactly one job, for the new ID; at no moment
// are there two; backups continue in the same directory, from the new
// container; nothing of the old one starts after its job is gone. A burst
// of quick recreations ends the same way.
func TestRecreateKeepsOneJob(t *testing.T) {
	name := itest.UniqueName("lbe2e-recreate")
	id1 := itest.RunLabeled(t, name, synthLabels(everySecond))
	agent, backups := startAgentWith(t, "1", nil)
	waitJobs(t, agent, 10*time.Second, "the first job", hasJob(name, id1))
	waitBackups(t, backups, name, 1, 15*time.Second, nil)

	var mu sync.Mutex
	maxJobs := 0
	var maxAt string
	// Container ID -> arrival of the first answer without its job, once it
	// had one: the job was surely gone by then.
	goneAt := map[string]time.Time{}
	listed := map[string]bool{}
	poller := itest.PollJobs(t, agent, 10*time.Millisecond, func(at time.Time, v itest.JobsView) {
		js := v.Named(name)
		mu.Lock()
		defer mu.Unlock()
		if len(js) > maxJobs {
			maxJobs, maxAt = len(js), at.Format(time.StampMilli)+": "+describe(js)
		}
		now := map[string]bool{}
		for _, j := range js {
			now[j.ContainerID] = true
			listed[j.ContainerID] = true
		}
		for id := range listed {
			if _, ok := goneAt[id]; !ok && !now[id] {
				goneAt[id] = at
			}
		}
	})

	itest.Remove(t, name)
	start := time.Now()
	id2 := itest.Docker(t, append([]string{"run", "-d"}, itest.LabeledArgs(t, name, synthLabels(everySecond))...)...)
	latency, _ := waitJobs(t, agent, 3*time.Second, "the recreated container's job", hasJob(name, id2))
	t.Logf("latency from `docker run` returning to the new ID's job in /jobs: %v (rm+run+schedule: %v)", latency, time.Since(start))
	waitBackups(t, backups, name, 2, 15*time.Second, func(b itest.Backup) bool { return b.Meta.ContainerID == id2 })

	// A burst: three recreations without waiting in between.
	ids := []string{id1, id2}
	for i := 0; i < 3; i++ {
		itest.Remove(t, name)
		ids = append(ids, itest.Docker(t, append([]string{"run", "-d"}, itest.LabeledArgs(t, name, synthLabels(everySecond))...)...))
	}
	final := ids[len(ids)-1]
	waitJobs(t, agent, 3*time.Second, "the last recreated container's job", hasJob(name, final))
	waitBackups(t, backups, name, 2, 15*time.Second, func(b itest.Backup) bool { return b.Meta.ContainerID == final })
	time.Sleep(2 * time.Second) // two more reconciles
	polls, errs := poller.Stop()
	if len(errs) != 0 {
		t.Errorf("/jobs failed %d times while polling: %v", len(errs), errs[0])
	}
	t.Logf("%d polls of /jobs during the recreations", polls)
	if maxJobs > 1 {
		t.Errorf("%d jobs at once for %s: %s", maxJobs, name, maxAt)
	}

	v := agent.MustJobs(t)
	if js := v.Named(name); len(js) != 1 || js[0].ContainerID != final {
		t.Errorf("jobs for %s = %s, want exactly one, for %s", name, describe(js), short(final))
	}
	for _, old := range ids[:len(ids)-1] {
		if len(v.WithID(old)) != 0 {
			t.Errorf("removed container %s still has a job", short(old))
		}
	}
	// Backups of removed containers never start after their job is gone.
	mu.Lock()
	defer mu.Unlock()
	all := itest.BackupsIn(t, backups, name)
	byID := map[string]int{}
	for _, b := range all {
		byID[b.Meta.ContainerID]++
		if b.Meta.ContainerID == final {
			continue
		}
		if gone, ok := goneAt[b.Meta.ContainerID]; ok && b.Meta.Timestamp.After(gone) {
			t.Errorf("backup %s of removed container %s started at %v, after its job was gone (%v)",
				filepath.Base(b.Path), short(b.Meta.ContainerID), b.Meta.Timestamp, gone)
		}
	}
	t.Logf("backups in %s by container: %v", name, shortKeys(byID))
	stopAgent(t, agent, backups)
}

// TestRenameMovesJob: `docker rename` keeps the container (same ID) and
// its one job, which now carries the new name; new backups land in the new
// name's directory and none start under the old one.
func TestRenameMovesJob(t *testing.T) {
	oldName := itest.UniqueName("lbe2e-rename-a")
	newName := oldName + "-b"
	id := itest.RunLabeled(t, oldName, synthLabels(everySecond))
	itest.RemoveOnCleanup(t, newName)
	agent, backups := startAgentWith(t, "60", nil)
	waitJobs(t, agent, 10*time.Second, "the job", hasJob(oldName, id))
	waitBackups(t, backups, oldName, 1, 15*time.Second, nil)

	var mu sync.Mutex
	maxJobs := 0
	poller := itest.PollJobs(t, agent, 10*time.Millisecond, func(_ time.Time, v itest.JobsView) {
		mu.Lock()
		maxJobs = max(maxJobs, len(v.WithID(id)))
		mu.Unlock()
	})
	itest.Docker(t, "rename", oldName, newName)
	latency, _ := waitJobs(t, agent, 3*time.Second, "the job under its new name", func(v itest.JobsView) bool {
		return hasJob(newName, id)(v) && noJob(oldName)(v)
	})
	renamed := time.Now()
	t.Logf("latency from `docker rename` returning to the new name in /jobs: %v", latency)
	got := waitBackups(t, backups, newName, 2, 15*time.Second, nil)
	for _, b := range got {
		if b.Meta.ContainerID != id || b.Meta.ContainerName != newName {
			t.Errorf("backup %s: container %s %q, want %s %q", b.Path, short(b.Meta.ContainerID), b.Meta.ContainerName, short(id), newName)
		}
	}
	poller.Stop()
	if maxJobs > 1 {
		t.Errorf("%d jobs at once for container %s during the rename", maxJobs, short(id))
	}
	for _, b := range itest.BackupsIn(t, backups, oldName) {
		if b.Meta.Timestamp.After(renamed) {
			t.Errorf("backup %s started under the old name at %v, after the rename was seen (%v)", filepath.Base(b.Path), b.Meta.Timestamp, renamed)
		}
	}
	stopAgent(t, agent, backups)
}

// TestLabelChangeReplacesJob: labels cannot change on a running container,
// so a label change is a recreation with new labels; the job takes the new
// schedule and prefix, and backups move to the new prefix.
func TestLabelChangeReplacesJob(t *testing.T) {
	name := itest.UniqueName("lbe2e-labels")
	l1 := synthLabels(everySecond)
	l1["backup.prefix"] = "lbe2e-p1"
	id1 := itest.RunLabeled(t, name, l1)
	agent, backups := startAgentWith(t, "60", nil)
	_, v := waitJobs(t, agent, 10*time.Second, "the first job", hasJob(name, id1))
	if j := v.Named(name)[0]; j.Cron != everySecond || j.Prefix != "lbe2e-p1" {
		t.Errorf("first job: cron %q prefix %q", j.Cron, j.Prefix)
	}
	waitBackups(t, backups, "lbe2e-p1/"+name, 1, 15*time.Second, nil)

	var mu sync.Mutex
	maxJobs := 0
	poller := itest.PollJobs(t, agent, 10*time.Millisecond, func(_ time.Time, v itest.JobsView) {
		mu.Lock()
		maxJobs = max(maxJobs, len(v.Named(name)))
		mu.Unlock()
	})
	const cron2 = "*/2 * * * * *"
	l2 := synthLabels(cron2)
	l2["backup.prefix"] = "lbe2e-p2"
	itest.Remove(t, name)
	id2 := itest.Docker(t, append([]string{"run", "-d"}, itest.LabeledArgs(t, name, l2)...)...)
	latency, v := waitJobs(t, agent, 3*time.Second, "the job with the new labels", hasJob(name, id2))
	changed := time.Now()
	t.Logf("latency from `docker run` with new labels returning to the new job in /jobs: %v", latency)
	j := v.Named(name)[0]
	if j.Cron != cron2 || j.Prefix != "lbe2e-p2" {
		t.Errorf("job after the change: cron %q prefix %q, want %q %q", j.Cron, j.Prefix, cron2, "lbe2e-p2")
	}
	if j.NextRun == nil || j.NextRun.Second()%2 != 0 {
		t.Errorf("next run %v does not follow %q", j.NextRun, cron2)
	}
	got := waitBackups(t, backups, "lbe2e-p2/"+name, 2, 15*time.Second, nil)
	for _, b := range got {
		if b.Meta.ContainerID != id2 || b.Meta.CronSchedule != cron2 || b.Meta.Timestamp.Second()%2 != 0 {
			t.Errorf("backup %s: container %s, cron %q, started %v", b.Path, short(b.Meta.ContainerID), b.Meta.CronSchedule, b.Meta.Timestamp)
		}
	}
	poller.Stop()
	if maxJobs > 1 {
		t.Errorf("%d jobs at once for %s during the label change", maxJobs, name)
	}
	for _, b := range itest.BackupsIn(t, backups, "lbe2e-p1/"+name) {
		if b.Meta.Timestamp.After(changed) {
			t.Errorf("backup %s started under the old prefix at %v, after the change was seen (%v)", filepath.Base(b.Path), b.Meta.Timestamp, changed)
		}
	}
	stopAgent(t, agent, backups)
}

// TestBadLabelsRejectedOnce: a container with an invalid label is listed as
// rejected with a message naming the label, logged once however many
// reconciles and events follow, and disturbs nothing else.
func TestBadLabelsRejectedOnce(t *testing.T) {
	bad := itest.UniqueName("lbe2e-badret")
	good := itest.UniqueName("lbe2e-goodret")
	badLabels := synthLabels(everySecond)
	badLabels["backup.retention"] = "7 days"
	goodLabels := synthLabels(everySecond)
	goodLabels["backup.retention"] = "7d"
	itest.RunLabeled(t, bad, badLabels)
	itest.RunLabeled(t, good, goodLabels)
	agent, backups := startAgentWith(t, "1", nil)
	waitJobs(t, agent, 10*time.Second, "the good job and the rejected container", func(v itest.JobsView) bool {
		return hasJob(good, "")(v) && len(v.RejectedNamed(bad)) == 1
	})
	waitBackups(t, backups, good, 1, 15*time.Second, nil)
	start := time.Now()

	// Events as well as reconciles: a signal to the bad container, and an
	// unrelated labeled container coming and going.
	itest.Docker(t, "kill", "--signal", "HUP", bad)
	other := itest.UniqueName("lbe2e-badret-other")
	itest.RunLabeled(t, other, synthLabels("0 0 1 1 *"))
	waitJobs(t, agent, 3*time.Second, "the other job", hasJob(other, ""))
	itest.Docker(t, "stop", other)
	waitJobs(t, agent, 3*time.Second, "the other job to go", noJob(other))
	time.Sleep(4 * time.Second) // four more reconcile intervals

	v := agent.MustJobs(t)
	rs := v.RejectedNamed(bad)
	if len(rs) != 1 {
		t.Fatalf("rejected = %+v, want one entry for %s", v.Rejected, bad)
	}
	if !strings.Contains(rs[0].Error, "backup.retention") {
		t.Errorf("rejection error %q does not name backup.retention", rs[0].Error)
	}
	if len(rs[0].Problems) != 1 || rs[0].Problems[0].Label != "backup.retention" {
		t.Errorf("rejection problems = %+v, want one, for backup.retention", rs[0].Problems)
	}
	if len(v.Named(bad)) != 0 {
		t.Errorf("the bad container has a job: %+v", v.Named(bad))
	}
	if js := v.Named(good); len(js) != 1 {
		t.Errorf("good job = %s, want one", describe(js))
	}
	if got := waitBackups(t, backups, good, 3, 10*time.Second, startedAfter(start)); len(got) < 3 {
		t.Errorf("good container: %d backups after the events", len(got))
	}
	if bs, _, _ := itest.ScanBackups(filepath.Join(backups, bad)); len(bs) != 0 {
		t.Errorf("the bad container was backed up: %d backups", len(bs))
	}

	logs := agent.Logs()
	mentions := logLines(agent, bad, "backup.retention")
	if len(mentions) != 1 {
		t.Errorf("the log mentions the bad label %d times, want once:\n%s", len(mentions), strings.Join(mentions, "\n"))
	} else {
		t.Logf("the one log line: %s", mentions[0])
	}
	if n := strings.Count(logs, "connected to the docker engine"); n != 1 {
		t.Errorf("connected %d times, want 1", n)
	}
	stopAgent(t, agent, backups)
}

// logLines returns the agent's log lines that contain every one of words.
func logLines(a *itest.Agent, words ...string) []string {
	var out []string
	for _, line := range strings.Split(a.Logs(), "\n") {
		all := true
		for _, w := range words {
			all = all && strings.Contains(line, w)
		}
		if all {
			out = append(out, line)
		}
	}
	return out
}

// dirList names every file in dir (hidden ones too), with sizes.
func dirList(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var parts []string
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, fmt.Sprintf("%s(%d)", e.Name(), info.Size()))
	}
	return strings.Join(parts, " ")
}

func describe(js []itest.JobView) string {
	if len(js) == 0 {
		return "no job"
	}
	parts := make([]string, len(js))
	for i, j := range js {
		parts[i] = j.ContainerName + "@" + short(j.ContainerID)
	}
	return strings.Join(parts, ", ")
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func shortKeys(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[short(k)] = v
	}
	return out
}
