package scheduler

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
	_ "time/tzdata" // the zone tests must not depend on the machine's zoneinfo

	"github.com/hashicorp/go-hclog"

	"github.com/labelbackup/label-backup/host/internal/discovery"
	"github.com/labelbackup/label-backup/host/internal/labels"
	"github.com/labelbackup/label-backup/host/internal/pipeline"
)

// ---- fakes and helpers ----

// fakeRunner blocks every run until the test releases it (one value on
// release frees one run; closing release frees all) or its ctx is
// cancelled. It records what ran and the highest concurrency seen.
type fakeRunner struct {
	started chan pipeline.Job
	release chan struct{}
	// windDown, when set, is waited on after a run sees its ctx cancelled,
	// so a test can hold a cancelled run "winding down".
	windDown chan struct{}

	mu        sync.Mutex
	cur, max  int
	runs      []pipeline.Job
	cancelled []string
}

func newRunner() *fakeRunner {
	return &fakeRunner{started: make(chan pipeline.Job, 256), release: make(chan struct{})}
}

func (f *fakeRunner) Run(ctx context.Context, job pipeline.Job) pipeline.Result {
	f.mu.Lock()
	f.cur++
	if f.cur > f.max {
		f.max = f.cur
	}
	f.runs = append(f.runs, job)
	f.mu.Unlock()
	f.started <- job
	res := pipeline.Result{RunID: "run-" + job.ContainerName, Started: time.Now().UTC(), Object: job.ContainerName + ".dump"}
	select {
	case <-f.release:
	case <-ctx.Done():
		res.Err = fmt.Errorf("backup cancelled: %w", ctx.Err())
		f.mu.Lock()
		f.cancelled = append(f.cancelled, job.ContainerName)
		f.mu.Unlock()
		if f.windDown != nil {
			<-f.windDown
		}
	}
	f.mu.Lock()
	f.cur--
	f.mu.Unlock()
	return res
}

func (f *fakeRunner) snapshot() (runs []pipeline.Job, max int, cancelled []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]pipeline.Job(nil), f.runs...), f.max, append([]string(nil), f.cancelled...)
}

// waitStarted returns the next run the runner started.
func (f *fakeRunner) waitStarted(t *testing.T) pipeline.Job {
	t.Helper()
	select {
	case j := <-f.started:
		return j
	case <-time.After(5 * time.Second):
		t.Fatal("timed out waiting for a run to start")
		return pipeline.Job{}
	}
}

// eventLog collects OnEvent calls and flags any that arrive after Stop
// returned.
type eventLog struct {
	ch chan Event

	mu          sync.Mutex
	stopped     bool
	afterStop   []Event
	concurrentN int
}

func newEventLog() *eventLog { return &eventLog{ch: make(chan Event, 1024)} }

func (e *eventLog) on(ev Event) {
	e.mu.Lock()
	if e.stopped {
		e.afterStop = append(e.afterStop, ev)
	}
	e.mu.Unlock()
	select {
	case e.ch <- ev:
	default: // the stress test produces more than it reads
	}
}

func (e *eventLog) markStopped() {
	e.mu.Lock()
	e.stopped = true
	e.mu.Unlock()
}

func (e *eventLog) late() []Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Event(nil), e.afterStop...)
}

func (e *eventLog) next(t *testing.T) Event {
	t.Helper()
	select {
	case ev := <-e.ch:
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("timed out waiting for an event")
		return Event{}
	}
}

// none checks that no event is pending.
func (e *eventLog) none(t *testing.T) {
	t.Helper()
	select {
	case ev := <-e.ch:
		t.Fatalf("unexpected event: %s %s %v", ev.Job.ContainerName, ev.Outcome, ev.Result.Err)
	default:
	}
}

// syncBuffer is a log sink safe for the scheduler's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) count(s string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Count(b.b.String(), s)
}

const testConn = "postgresql://app:pw@db:5432/app"

// ctr is a running container with valid labels, changed by kv pairs (an
// empty value deletes the label).
func ctr(id, name string, kv ...string) discovery.Container {
	l := map[string]string{
		labels.Enabled: "true",
		labels.Type:    "postgres",
		labels.Cron:    "0 2 * * *",
		labels.Conn:    testConn,
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			delete(l, kv[i])
			continue
		}
		l[kv[i]] = kv[i+1]
	}
	return discovery.Container{ID: id, Name: name, Labels: l}
}

// newTest returns a started scheduler that is stopped (with no grace) when
// the test ends.
func newTest(t *testing.T, opts Options) *Scheduler {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	s := New(opts)
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		s.Stop(ctx)
	})
	return s
}

// eventually polls cond; counters have no change notification.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func jobNames(s *Scheduler) []string {
	js, _ := s.Jobs()
	out := make([]string, len(js))
	for i, j := range js {
		out[i] = j.Job.ContainerName
	}
	return out
}

func stopNow(s *Scheduler) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.Stop(ctx)
}

// noLeak waits until the goroutine count is back to base.
func noLeak(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			n := runtime.Stack(buf, true)
			t.Fatalf("goroutines leaked: %d > %d\n%s", runtime.NumGoroutine(), base, buf[:n])
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// ---- Reconcile ----

type jobState struct {
	id, name, cron string
	entry          int
}

// state reads the scheduler's jobs and checks the invariant "one cron
// entry per job, none orphaned".
func state(t *testing.T, s *Scheduler) map[string]jobState {
	t.Helper()
	s.mu.Lock()
	out := map[string]jobState{}
	entries := map[int]bool{}
	for id, j := range s.jobs {
		if id != j.ContainerID {
			t.Errorf("job %s is filed under id %s", j.ContainerID, id)
		}
		out[id] = jobState{id: id, name: j.ContainerName, cron: j.Spec.Cron, entry: int(j.entry)}
		entries[int(j.entry)] = true
	}
	s.mu.Unlock()
	ces := s.cron.Entries()
	if len(ces) != len(out) {
		t.Errorf("%d cron entries for %d jobs", len(ces), len(out))
	}
	for _, e := range ces {
		if !entries[int(e.ID)] {
			t.Errorf("orphaned cron entry %d", e.ID)
		}
	}
	return out
}

func TestReconcileConverges(t *testing.T) {
	pluginErr := errors.New(`no dumper plugin "mysql" installed`)
	s := newTest(t, Options{
		Runner: newRunner(),
		PluginCheck: func(dbType string) error {
			if dbType == "mysql" {
				return pluginErr
			}
			return nil
		},
		Limit: 2,
	})
	steps := []struct {
		name string
		snap []discovery.Container
		// want maps container id to name (and the job count equals its
		// length); cron optionally maps id to the expected schedule.
		want map[string]string
		cron map[string]string
		// same lists ids whose cron entry must be the one of the previous
		// step; changed ids whose entry must be new.
		same, changed []string
		// rejected maps id to the labels expected in its problems (an
		// empty list: any error, e.g. a missing plugin).
		rejected map[string][]string
	}{
		{
			name: "new containers are added",
			snap: []discovery.Container{ctr("a1", "a"), ctr("b1", "b"), ctr("c1", "c")},
			want: map[string]string{"a1": "a", "b1": "b", "c1": "c"},
		},
		{
			name: "an unchanged snapshot keeps the same entries",
			snap: []discovery.Container{ctr("a1", "a"), ctr("b1", "b"), ctr("c1", "c")},
			want: map[string]string{"a1": "a", "b1": "b", "c1": "c"},
			same: []string{"a1", "b1", "c1"},
		},
		{
			name:    "a label change replaces the job",
			snap:    []discovery.Container{ctr("a1", "a"), ctr("b1", "b", labels.Cron, "*/5 * * * *"), ctr("c1", "c")},
			want:    map[string]string{"a1": "a", "b1": "b", "c1": "c"},
			cron:    map[string]string{"b1": "*/5 * * * *"},
			same:    []string{"a1", "c1"},
			changed: []string{"b1"},
		},
		{
			name:    "a secret change replaces the job too",
			snap:    []discovery.Container{ctr("a1", "a"), ctr("b1", "b", labels.Cron, "*/5 * * * *", labels.Conn, "postgresql://app:new@db/app"), ctr("c1", "c")},
			want:    map[string]string{"a1": "a", "b1": "b", "c1": "c"},
			same:    []string{"a1", "c1"},
			changed: []string{"b1"},
		},
		{
			name:    "a rename replaces the job",
			snap:    []discovery.Container{ctr("a1", "a-renamed"), ctr("b1", "b", labels.Cron, "*/5 * * * *", labels.Conn, "postgresql://app:new@db/app"), ctr("c1", "c")},
			want:    map[string]string{"a1": "a-renamed", "b1": "b", "c1": "c"},
			same:    []string{"b1", "c1"},
			changed: []string{"a1"},
		},
		{
			name: "a recreated container has exactly one job",
			snap: []discovery.Container{ctr("a1", "a-renamed"), ctr("b1", "b", labels.Cron, "*/5 * * * *", labels.Conn, "postgresql://app:new@db/app"), ctr("c2", "c")},
			want: map[string]string{"a1": "a-renamed", "b1": "b", "c2": "c"},
			same: []string{"a1", "b1"},
		},
		{
			name: "a container that disappeared loses its job",
			snap: []discovery.Container{ctr("a1", "a-renamed"), ctr("c2", "c")},
			want: map[string]string{"a1": "a-renamed", "c2": "c"},
			same: []string{"a1", "c2"},
		},
		{
			name: "a disabled container has no job and is not rejected",
			snap: []discovery.Container{ctr("a1", "a-renamed", labels.Enabled, "false"), ctr("c2", "c")},
			want: map[string]string{"c2": "c"},
			same: []string{"c2"},
		},
		{
			name:     "bad labels: rejected with their problems, no job",
			snap:     []discovery.Container{ctr("a1", "a-renamed", labels.Enabled, "false"), ctr("c2", "c", labels.Cron, "every day", labels.Dest, "ftp")},
			want:     map[string]string{},
			rejected: map[string][]string{"c2": {labels.Cron, labels.Dest}},
		},
		{
			name:     "a missing plugin: rejected, no job",
			snap:     []discovery.Container{ctr("c2", "c"), ctr("d1", "d", labels.Type, "mysql")},
			want:     map[string]string{"c2": "c"},
			rejected: map[string][]string{"d1": nil},
		},
		{
			name: "an empty snapshot removes everything",
			want: map[string]string{},
		},
	}
	prev := map[string]jobState{}
	for _, st := range steps {
		s.Reconcile(st.snap)
		got := state(t, s)
		if len(got) != len(st.want) {
			t.Errorf("%s: %d jobs, want %d: %v", st.name, len(got), len(st.want), got)
		}
		for id, name := range st.want {
			if got[id].name != name {
				t.Errorf("%s: job %s named %q, want %q", st.name, id, got[id].name, name)
			}
		}
		for id, c := range st.cron {
			if got[id].cron != c {
				t.Errorf("%s: job %s has cron %q, want %q", st.name, id, got[id].cron, c)
			}
		}
		for _, id := range st.same {
			if got[id].entry != prev[id].entry {
				t.Errorf("%s: job %s changed entry %d -> %d", st.name, id, prev[id].entry, got[id].entry)
			}
		}
		for _, id := range st.changed {
			if got[id].entry == prev[id].entry {
				t.Errorf("%s: job %s kept entry %d", st.name, id, got[id].entry)
			}
		}
		jobs, rej := s.Jobs()
		if nj, nr := s.Counts(); nj != len(jobs) || nr != len(rej) {
			t.Errorf("%s: Counts() = %d, %d; Jobs() lists %d, %d", st.name, nj, nr, len(jobs), len(rej))
		}
		if len(jobs) != len(st.want) {
			t.Errorf("%s: Jobs() lists %d, want %d", st.name, len(jobs), len(st.want))
		}
		if len(rej) != len(st.rejected) {
			t.Errorf("%s: %d rejected, want %d: %+v", st.name, len(rej), len(st.rejected), rej)
		}
		for _, r := range rej {
			wantLabels, ok := st.rejected[r.ContainerID]
			if !ok {
				t.Errorf("%s: unexpected rejection %+v", st.name, r)
				continue
			}
			if r.Error == "" || r.ContainerName == "" {
				t.Errorf("%s: rejection without error or name: %+v", st.name, r)
			}
			var gotLabels []string
			for _, p := range r.Problems {
				gotLabels = append(gotLabels, p.Label)
			}
			if strings.Join(gotLabels, ",") != strings.Join(wantLabels, ",") {
				t.Errorf("%s: problems on %v, want %v", st.name, gotLabels, wantLabels)
			}
			if r.ContainerID == "d1" && !strings.Contains(r.Error, pluginErr.Error()) {
				t.Errorf("%s: rejection %q does not carry the plugin error", st.name, r.Error)
			}
		}
		prev = got
	}
}

func TestRejectionsAndWarningsLoggedOnce(t *testing.T) {
	buf := &syncBuffer{}
	logger := hclog.New(&hclog.LoggerOptions{Output: buf, Level: hclog.Info})
	s := newTest(t, Options{
		Runner: newRunner(),
		PluginCheck: func(dbType string) error {
			if dbType == "mysql" {
				return fmt.Errorf("no dumper plugin %q", dbType)
			}
			return nil
		},
		Logger: logger,
	})
	bad := ctr("b1", "bad", labels.Cron, "nope")
	warn := ctr("w1", "warned", "backup.colour", "blue")
	noPlugin := ctr("m1", "mysql-db", labels.Type, "mysql")
	for range 5 {
		s.Reconcile([]discovery.Container{bad, warn, noPlugin})
	}
	if n := buf.count("container skipped"); n != 2 {
		t.Errorf("after 5 reconciles: %d rejection lines, want 2 (one per container)\n%s", n, buf.b.String())
	}
	if n := buf.count("label warning"); n != 1 {
		t.Errorf("after 5 reconciles: %d warning lines, want 1", n)
	}
	// A different problem is news: logged once more.
	bad2 := ctr("b1", "bad", labels.Cron, "nope", labels.Dest, "ftp")
	for range 3 {
		s.Reconcile([]discovery.Container{bad2, warn, noPlugin})
	}
	if n := buf.count("container skipped"); n != 3 {
		t.Errorf("after a new problem: %d rejection lines, want 3", n)
	}
	if n := buf.count("label warning"); n != 1 {
		t.Errorf("after unrelated changes: %d warning lines, want 1", n)
	}
	// Recreated with the same labels: the same warning is not news.
	warn2 := ctr("w2", "warned", "backup.colour", "blue")
	s.Reconcile([]discovery.Container{bad2, warn2, noPlugin})
	if n := buf.count("label warning"); n != 1 {
		t.Errorf("after a recreate: %d warning lines, want 1", n)
	}
	// A new unknown label is.
	warn3 := ctr("w2", "warned", "backup.colour", "blue", "backup.size", "xl")
	s.Reconcile([]discovery.Container{bad2, warn3, noPlugin})
	if n := buf.count("label warning"); n != 3 {
		t.Errorf("after a new unknown label: %d warning lines, want 3", n)
	}
}

func TestNilLoggerIsAllowed(t *testing.T) {
	s := New(Options{Runner: newRunner(), Location: time.UTC})
	defer stopNow(s)
	s.Reconcile([]discovery.Container{ctr("b1", "bad", labels.Cron, "nope"), ctr("w1", "w", "backup.x", "y")})
	if got := jobNames(s); len(got) != 1 {
		t.Fatalf("jobs %v", got)
	}
}

// ---- queueing and the concurrency limit ----

func TestLimitQueuesAndNeverDrops(t *testing.T) {
	r := newRunner()
	ev := newEventLog()
	s := newTest(t, Options{Runner: r, Limit: 2, OnEvent: ev.on})
	var snap []discovery.Container
	for i := range 6 {
		snap = append(snap, ctr(fmt.Sprintf("id%d", i), fmt.Sprintf("db%d", i)))
	}
	s.Reconcile(snap)
	for _, c := range snap {
		if err := s.Trigger(c.ID); err != nil {
			t.Fatalf("Trigger(%s): %v", c.ID, err)
		}
	}
	// Accounted for synchronously: nothing is lost between Trigger and the
	// queue.
	if n := s.Queued() + s.Running(); n != 6 {
		t.Fatalf("queued+running = %d right after 6 triggers", n)
	}
	eventually(t, "2 run and 4 wait", func() bool { return s.Running() == 2 && s.Queued() == 4 })
	jobs, _ := s.Jobs()
	for _, j := range jobs {
		if !j.Busy {
			t.Errorf("%s not busy while queued or running", j.Job.ContainerName)
		}
	}
	ran := map[string]int{}
	for i := range 6 {
		j := r.waitStarted(t)
		ran[j.ContainerName]++
		if _, max, _ := r.snapshot(); max > 2 {
			t.Fatalf("%d runs at once with Limit=2", max)
		}
		// i runs have ended, so min(i+2, 6) have started.
		wantQueued, wantRunning := int64(6-min(i+2, 6)), int64(min(2, 6-i))
		eventually(t, fmt.Sprintf("%d queued and %d running", wantQueued, wantRunning), func() bool {
			return s.Queued() == wantQueued && s.Running() == wantRunning
		})
		r.release <- struct{}{}
	}
	outcomes := map[string]Outcome{}
	for range 6 {
		e := ev.next(t)
		outcomes[e.Job.ContainerName] = e.Outcome
	}
	for _, c := range snap {
		if ran[c.Name] != 1 || outcomes[c.Name] != Succeeded {
			t.Errorf("%s ran %d times, outcome %q", c.Name, ran[c.Name], outcomes[c.Name])
		}
	}
	eventually(t, "idle", func() bool { return s.Running() == 0 && s.Queued() == 0 })
	if _, max, _ := r.snapshot(); max != 2 {
		t.Errorf("max concurrency %d, want 2", max)
	}
	jobs, _ = s.Jobs()
	for _, j := range jobs {
		if j.Busy || j.LastRun == nil || j.LastRun.Outcome != Succeeded {
			t.Errorf("%s: busy=%v last=%+v", j.Job.ContainerName, j.Busy, j.LastRun)
		}
	}
}

// Due runs start in the order they became due.
func TestQueueIsFIFO(t *testing.T) {
	r := newRunner()
	s := newTest(t, Options{Runner: r, Limit: 1})
	var snap []discovery.Container
	for i := range 6 {
		snap = append(snap, ctr(fmt.Sprintf("id%d", i), fmt.Sprintf("db%d", i)))
	}
	s.Reconcile(snap)
	order := []int{3, 0, 5, 1, 4, 2}
	for _, i := range order {
		if err := s.Trigger(snap[i].ID); err != nil {
			t.Fatal(err)
		}
	}
	for _, i := range order {
		if j := r.waitStarted(t); j.ContainerID != snap[i].ID {
			t.Fatalf("started %s, want %s", j.ContainerID, snap[i].ID)
		}
		r.release <- struct{}{}
	}
}

// SetLimit (a configuration reload): raising starts waiting runs at once;
// lowering interrupts nothing and holds new starts until below it.
func TestSetLimit(t *testing.T) {
	r := newRunner()
	ev := newEventLog()
	s := newTest(t, Options{Runner: r, Limit: 1, OnEvent: ev.on})
	var snap []discovery.Container
	for i := range 5 {
		snap = append(snap, ctr(fmt.Sprintf("id%d", i), fmt.Sprintf("db%d", i)))
	}
	s.Reconcile(snap)
	for _, c := range snap {
		if err := s.Trigger(c.ID); err != nil {
			t.Fatal(err)
		}
	}
	r.waitStarted(t)
	if s.Running() != 1 || s.Queued() != 4 {
		t.Fatalf("running %d queued %d, want 1 and 4", s.Running(), s.Queued())
	}
	s.SetLimit(3)
	r.waitStarted(t)
	r.waitStarted(t)
	eventually(t, "3 running", func() bool { return s.Running() == 3 && s.Queued() == 2 })
	s.SetLimit(0) // read as 1: nothing running is touched
	if _, _, c := r.snapshot(); len(c) != 0 || s.Running() != 3 {
		t.Fatalf("lowering the limit disturbed runs: running %d, cancelled %v", s.Running(), c)
	}
	for range 2 { // 3 -> 1 running: still not below the limit of 1
		r.release <- struct{}{}
		ev.next(t)
	}
	select {
	case j := <-r.started:
		t.Fatalf("%s started with %d running and a limit of 1", j.ContainerName, s.Running()+1)
	case <-time.After(20 * time.Millisecond):
	}
	r.release <- struct{}{}
	ev.next(t)
	r.waitStarted(t) // below the limit now: the next one starts
	r.release <- struct{}{}
	ev.next(t)
	r.waitStarted(t)
	r.release <- struct{}{}
	ev.next(t)
	if _, max, _ := r.snapshot(); max != 3 {
		t.Errorf("max concurrency %d, want 3", max)
	}
	eventually(t, "idle", func() bool { return s.Running() == 0 && s.Queued() == 0 })
}

// A run waiting for a slot when its job changes must never run the old
// spec: it follows the container's current job, or is dropped when the
// container has none.
func TestQueuedRunNeverUsesStaleSpec(t *testing.T) {
	const newConn = "postgresql://app:rotated@db:5432/app"
	tests := []struct {
		name string
		// then is the snapshot applied while "target" waits.
		then []discovery.Container
		// wantID is the container the queued run must back up; empty: it
		// must not run at all.
		wantID, wantConn string
	}{
		{"labels changed", []discovery.Container{ctr("blk", "blocker"), ctr("t1", "target", labels.Conn, newConn)}, "t1", newConn},
		{"recreated", []discovery.Container{ctr("blk", "blocker"), ctr("t2", "target", labels.Conn, newConn)}, "t2", newConn},
		{"renamed", []discovery.Container{ctr("blk", "blocker"), ctr("t1", "target-2")}, "t1", testConn},
		{"removed", []discovery.Container{ctr("blk", "blocker")}, "", ""},
		{"disabled", []discovery.Container{ctr("blk", "blocker"), ctr("t1", "target", labels.Enabled, "false")}, "", ""},
		{"labels broken", []discovery.Container{ctr("blk", "blocker"), ctr("t1", "target", labels.Cron, "bad")}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRunner()
			ev := newEventLog()
			s := newTest(t, Options{Runner: r, Limit: 1, OnEvent: ev.on})
			s.Reconcile([]discovery.Container{ctr("blk", "blocker"), ctr("t1", "target")})
			if err := s.Trigger("blk"); err != nil {
				t.Fatal(err)
			}
			r.waitStarted(t)
			if err := s.Trigger("t1"); err != nil {
				t.Fatal(err)
			}
			eventually(t, "target queued", func() bool { return s.Queued() == 1 })
			s.Reconcile(tt.then)
			if tt.wantID == "" {
				// Dropped at once: it does not hold a queue place until a
				// slot frees.
				eventually(t, "the queue to empty", func() bool { return s.Queued() == 0 })
			} else {
				// Following the new job, it still waits for the slot.
				select {
				case j := <-r.started:
					t.Fatalf("%s started while the only slot was taken", j.ContainerID)
				case <-time.After(20 * time.Millisecond):
				}
				if s.Queued() != 1 {
					t.Fatalf("Queued() = %d after the replace, want 1", s.Queued())
				}
			}
			r.release <- struct{}{} // blocker ends
			if e := ev.next(t); e.Job.ContainerID != "blk" || e.Outcome != Succeeded {
				t.Fatalf("first event %s %s", e.Job.ContainerID, e.Outcome)
			}
			if tt.wantID != "" {
				j := r.waitStarted(t)
				if j.ContainerID != tt.wantID || j.Spec.Conn != tt.wantConn {
					t.Fatalf("ran %s with conn %q, want %s with %q", j.ContainerID, j.Spec.Conn, tt.wantID, tt.wantConn)
				}
				jobs, _ := s.Jobs()
				for _, js := range jobs {
					if js.Job.ContainerID == tt.wantID && !js.Busy {
						t.Error("the job running the transferred run is not busy")
					}
				}
				r.release <- struct{}{}
				if e := ev.next(t); e.Job.ContainerID != tt.wantID || e.Outcome != Succeeded {
					t.Fatalf("second event %s %s", e.Job.ContainerID, e.Outcome)
				}
			}
			eventually(t, "idle", func() bool { return s.Running() == 0 && s.Queued() == 0 })
			stopNow(s)
			runs, _, _ := r.snapshot()
			want := 1
			if tt.wantID != "" {
				want = 2
			}
			if len(runs) != want {
				t.Errorf("%d runs, want %d: %+v", len(runs), want, runs)
			}
			if _, max, _ := r.snapshot(); max != 1 {
				t.Errorf("max concurrency %d with Limit=1", max)
			}
			ev.none(t)
		})
	}
}

// While a replaced job's run is still going, the new job for the same
// container must not start a second, concurrent run.
func TestReplacedJobDoesNotRunConcurrently(t *testing.T) {
	r := newRunner()
	ev := newEventLog()
	s := newTest(t, Options{Runner: r, Limit: 4, OnEvent: ev.on})
	s.Reconcile([]discovery.Container{ctr("t1", "target")})
	if err := s.Trigger("t1"); err != nil {
		t.Fatal(err)
	}
	r.waitStarted(t)
	for _, snap := range [][]discovery.Container{
		{ctr("t1", "target", labels.Cron, "*/5 * * * *")}, // relabelled
		{ctr("t2", "target", labels.Cron, "*/5 * * * *")}, // recreated
	} {
		s.Reconcile(snap)
		jobs, _ := s.Jobs()
		if len(jobs) != 1 || !jobs[0].Busy {
			t.Fatalf("after replace: %+v, want one busy job", jobs)
		}
		if err := s.Trigger(jobs[0].Job.ContainerID); err == nil {
			t.Fatal("Trigger on the replacement of a running job: no error")
		}
	}
	r.release <- struct{}{}
	if e := ev.next(t); e.Outcome != Succeeded {
		t.Fatalf("event %+v", e)
	}
	jobs, _ := s.Jobs()
	if jobs[0].LastRun == nil || jobs[0].LastRun.Outcome != Succeeded {
		t.Errorf("the replacement does not show the last run: %+v", jobs[0].LastRun)
	}
	eventually(t, "not busy", func() bool { j, _ := s.Jobs(); return !j[0].Busy })
	if _, max, _ := r.snapshot(); max != 1 {
		t.Errorf("max concurrency %d", max)
	}
}

// ---- overlapping runs ----

// A tick that finds the previous run still going is skipped: a Skipped
// event with a clear error, shown as the job's last run.
//
// It also checks Stop against a tick still in flight: the first skip blocks
// in OnEvent (after recording it) while Stop runs; Stop must wait for it so
// that no event follows its return. (One test: real ticks cost seconds.)
func TestTickWhileRunningIsSkippedAndRecorded(t *testing.T) {
	r := newRunner()
	ev := newEventLog()
	inSkip, unblock := make(chan struct{}), make(chan struct{})
	var once sync.Once
	s := newTest(t, Options{Runner: r, Limit: 4, OnEvent: func(e Event) {
		ev.on(e)
		if e.Outcome == Skipped {
			first := false
			once.Do(func() { first = true })
			if first {
				close(inSkip)
				<-unblock
			}
		}
	}})
	var unblockOnce sync.Once
	release := func() { unblockOnce.Do(func() { close(unblock) }) }
	t.Cleanup(release) // runs before newTest's Stop
	s.Reconcile([]discovery.Container{ctr("a1", "a", labels.Cron, "* * * * * *")})
	r.waitStarted(t) // a real tick, within a second
	e := ev.next(t)  // the next tick, a second later, finds it running
	if e.Outcome != Skipped || e.Job.ContainerID != "a1" {
		t.Fatalf("event %s %s, want a1 skipped", e.Job.ContainerID, e.Outcome)
	}
	if e.Result.Err == nil || !strings.Contains(e.Result.Err.Error(), "skipped") || !strings.Contains(e.Result.Err.Error(), "still") {
		t.Errorf("skip error %v is not clear", e.Result.Err)
	}
	if !errors.Is(e.Result.Err, ErrBusy) {
		t.Errorf("skip error %v does not wrap ErrBusy", e.Result.Err)
	}
	<-inSkip
	jobs, _ := s.Jobs()
	if len(jobs) != 1 || !jobs[0].Busy || jobs[0].LastRun == nil || jobs[0].LastRun.Outcome != Skipped {
		t.Fatalf("Jobs() = %+v, want busy with a skipped last run", jobs)
	}
	if err := s.Trigger("a1"); !errors.Is(err, ErrBusy) {
		t.Errorf("Trigger while running: %v, want ErrBusy", err)
	}
	if _, max, _ := r.snapshot(); max != 1 {
		t.Errorf("max concurrency %d, want 1", max)
	}

	stopped := make(chan struct{})
	go func() {
		stopNow(s) // no grace: the run is cancelled at once
		ev.markStopped()
		close(stopped)
	}()
	for {
		e := ev.next(t)
		if e.Outcome == Failed {
			break // the cancelled run reported; only the blocked tick is left
		}
		if e.Outcome != Skipped {
			t.Fatalf("event %s", e.Outcome)
		}
	}
	select {
	case <-stopped:
		t.Fatal("Stop returned while a tick was still reporting")
	case <-time.After(30 * time.Millisecond):
	}
	release()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop did not return")
	}
	if late := ev.late(); len(late) != 0 {
		t.Errorf("events after Stop returned: %+v", late)
	}
}

// A cron tick runs in its own goroutine and may reach fire just after
// Reconcile replaced or removed its job, or after Stop began.
func TestLateTick(t *testing.T) {
	tests := []struct {
		name string
		// then runs between the tick's start and fire.
		then func(s *Scheduler)
		// busy: the container's previous run is still going.
		busy        bool
		wantRunConn string // empty: no run
		wantOutcome Outcome
		wantErr     error
	}{
		{name: "job unchanged", then: func(*Scheduler) {}, wantRunConn: testConn, wantOutcome: Succeeded},
		{name: "job replaced: runs the new spec", then: func(s *Scheduler) {
			s.Reconcile([]discovery.Container{ctr("a1", "a", labels.Conn, "postgresql://new@db/app")})
		}, wantRunConn: "postgresql://new@db/app", wantOutcome: Succeeded},
		{name: "job recreated: runs the new container", then: func(s *Scheduler) {
			s.Reconcile([]discovery.Container{ctr("a2", "a")})
		}, wantRunConn: testConn, wantOutcome: Succeeded},
		{name: "job removed: nothing", then: func(s *Scheduler) { s.Reconcile(nil) }},
		{name: "stopping: reported cancelled", then: func(s *Scheduler) {
			s.mu.Lock() // the moment between Stop's flag and cron.Stop
			s.stopped = true
			s.mu.Unlock()
		}, wantOutcome: Failed, wantErr: ErrCancelled},
		{name: "stopping while busy: skipped", busy: true, then: func(s *Scheduler) {
			s.mu.Lock()
			s.stopped = true
			s.mu.Unlock()
		}, wantOutcome: Skipped, wantErr: ErrBusy},
		{name: "busy: skipped", busy: true, then: func(*Scheduler) {}, wantOutcome: Skipped, wantErr: ErrBusy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRunner()
			close(r.release)
			ev := newEventLog()
			s := newTest(t, Options{Runner: r, OnEvent: ev.on})
			s.Reconcile([]discovery.Container{ctr("a1", "a")})
			s.mu.Lock()
			j := s.jobs["a1"]
			s.mu.Unlock()
			if tt.busy {
				j.line.busy.Store(true)
			}
			tt.then(s)
			s.fire(j)
			if tt.wantOutcome == "" {
				ev.none(t)
			} else {
				e := ev.next(t)
				if e.Outcome != tt.wantOutcome || (tt.wantErr != nil && !errors.Is(e.Result.Err, tt.wantErr)) {
					t.Fatalf("event %s %v, want %s %v", e.Outcome, e.Result.Err, tt.wantOutcome, tt.wantErr)
				}
			}
			runs, _, _ := r.snapshot()
			switch {
			case tt.wantRunConn == "" && len(runs) != 0:
				t.Errorf("runs %+v, want none", runs)
			case tt.wantRunConn != "" && (len(runs) != 1 || runs[0].Spec.Conn != tt.wantRunConn):
				t.Errorf("runs %+v, want one with conn %q", runs, tt.wantRunConn)
			}
			if s.Queued() != 0 || s.Running() != 0 {
				t.Errorf("queued %d running %d", s.Queued(), s.Running())
			}
		})
	}
}

// ---- Stop ----

func TestStopQueuedRunReportedRunningRunGetsGraceThenCancelled(t *testing.T) {
	r := newRunner()
	r.windDown = make(chan struct{})
	ev := newEventLog()
	s := newTest(t, Options{Runner: r, Limit: 1, OnEvent: ev.on})
	var once sync.Once
	letWindDown := func() { once.Do(func() { close(r.windDown) }) }
	t.Cleanup(letWindDown) // runs before newTest's Stop
	s.Reconcile([]discovery.Container{ctr("a1", "a"), ctr("b1", "b")})
	if err := s.Trigger("a1"); err != nil {
		t.Fatal(err)
	}
	r.waitStarted(t)
	if err := s.Trigger("b1"); err != nil {
		t.Fatal(err)
	}
	if s.Queued() != 1 {
		t.Fatalf("Queued() = %d right after Trigger, want 1", s.Queued())
	}

	grace, endGrace := context.WithCancel(context.Background())
	defer endGrace()
	stopped := make(chan struct{})
	go func() {
		s.Stop(grace)
		ev.markStopped()
		close(stopped)
	}()
	// The queued run is reported at once, without waiting for the grace.
	e := ev.next(t)
	if e.Job.ContainerID != "b1" || e.Outcome != Failed || e.Result.Err == nil ||
		!strings.Contains(e.Result.Err.Error(), "cancelled: agent shutting down before the backup started") {
		t.Fatalf("event %s %s %v, want b1 failed: cancelled before it started", e.Job.ContainerID, e.Outcome, e.Result.Err)
	}
	if !errors.Is(e.Result.Err, ErrCancelled) || e.Result.Started.IsZero() {
		t.Errorf("cancel event %+v: want ErrCancelled and a start time", e.Result)
	}
	if s.Queued() != 0 {
		t.Errorf("Queued() = %d after Stop", s.Queued())
	}
	// No new runs, no new jobs; the running one is still in its grace.
	if err := s.Trigger("b1"); err == nil {
		t.Error("Trigger after Stop: no error")
	}
	s.Reconcile([]discovery.Container{ctr("a1", "a"), ctr("b1", "b"), ctr("c1", "c")})
	if got := jobNames(s); strings.Join(got, ",") != "a,b" {
		t.Errorf("Reconcile after Stop changed the jobs: %v", got)
	}
	select {
	case <-stopped:
		t.Fatal("Stop returned while a run was in its grace period")
	case <-time.After(20 * time.Millisecond):
	}
	if _, _, c := r.snapshot(); len(c) != 0 {
		t.Fatalf("run cancelled during the grace period: %v", c)
	}
	// Grace over: the run is cancelled; Stop waits until it winds down.
	endGrace()
	eventually(t, "the run to see its ctx cancelled", func() bool { _, _, c := r.snapshot(); return len(c) == 1 })
	select {
	case <-stopped:
		t.Fatal("Stop returned before the cancelled run wound down")
	case <-time.After(20 * time.Millisecond):
	}
	letWindDown()
	e = ev.next(t)
	if e.Job.ContainerID != "a1" || e.Outcome != Failed {
		t.Errorf("event %s %s, want a1 failed", e.Job.ContainerID, e.Outcome)
	}
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop did not return")
	}
	runs, _, _ := r.snapshot()
	if len(runs) != 1 || runs[0].ContainerID != "a1" {
		t.Errorf("runs %+v, want only a1", runs)
	}
	if s.Running() != 0 || s.Queued() != 0 {
		t.Errorf("after Stop: running %d queued %d", s.Running(), s.Queued())
	}
	if late := ev.late(); len(late) != 0 {
		t.Errorf("%d events after Stop returned", len(late))
	}
}

// A slot that frees during the grace period must not start a queued run.
func TestStopNoRunStartsDuringGrace(t *testing.T) {
	r := newRunner()
	ev := newEventLog()
	s := newTest(t, Options{Runner: r, Limit: 1, OnEvent: ev.on})
	s.Reconcile([]discovery.Container{ctr("a1", "a"), ctr("b1", "b"), ctr("c1", "c")})
	for _, id := range []string{"a1", "b1", "c1"} {
		if err := s.Trigger(id); err != nil {
			t.Fatal(err)
		}
		if id == "a1" {
			r.waitStarted(t)
		}
	}
	eventually(t, "b and c queued", func() bool { return s.Queued() == 2 })
	stopped := make(chan struct{})
	go func() {
		s.Stop(context.Background()) // an unbounded grace
		ev.markStopped()
		close(stopped)
	}()
	failed := map[string]bool{}
	for range 2 {
		e := ev.next(t)
		if e.Outcome != Failed || !errors.Is(e.Result.Err, ErrCancelled) {
			t.Fatalf("event %s %s %v", e.Job.ContainerName, e.Outcome, e.Result.Err)
		}
		failed[e.Job.ContainerName] = true
	}
	if !failed["b"] || !failed["c"] {
		t.Fatalf("cancelled %v, want b and c", failed)
	}
	r.release <- struct{}{} // a finishes within its grace
	if e := ev.next(t); e.Job.ContainerName != "a" || e.Outcome != Succeeded {
		t.Fatalf("event %s %s", e.Job.ContainerName, e.Outcome)
	}
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop did not return after the last run ended")
	}
	runs, _, cancelled := r.snapshot()
	if len(runs) != 1 || len(cancelled) != 0 {
		t.Errorf("runs %v cancelled %v, want only a, not cancelled", runs, cancelled)
	}
	ev.none(t)
}

func TestAfterStop(t *testing.T) {
	base := runtime.NumGoroutine()
	r := newRunner()
	close(r.release) // runs end at once
	ev := newEventLog()
	s := New(Options{Runner: r, Limit: 2, Location: time.UTC, Logger: hclog.NewNullLogger(), OnEvent: ev.on})
	s.Reconcile([]discovery.Container{ctr("a1", "a", labels.Cron, "@every 1h")})
	if err := s.Trigger("a1"); err != nil {
		t.Fatal(err)
	}
	if e := ev.next(t); e.Outcome != Succeeded {
		t.Fatal(e.Outcome)
	}
	stopNow(s)
	ev.markStopped()
	stopNow(s) // twice is fine
	if err := s.Trigger("a1"); !errors.Is(err, ErrStopped) {
		t.Errorf("Trigger after Stop: %v, want ErrStopped", err)
	}
	if err := s.Trigger("nope"); err == nil {
		t.Error("Trigger of an unknown container: no error")
	}
	s.Reconcile([]discovery.Container{ctr("b1", "b")})
	s.Reconcile(nil)
	jobs, _ := s.Jobs()
	if len(jobs) != 1 || jobs[0].Job.ContainerID != "a1" {
		t.Errorf("Reconcile after Stop changed the jobs: %+v", jobs)
	}
	if len(s.cron.Entries()) != 1 {
		t.Errorf("Reconcile after Stop added cron entries: %d", len(s.cron.Entries()))
	}
	if late := ev.late(); len(late) != 0 {
		t.Errorf("events after Stop: %+v", late)
	}
	noLeak(t, base)
}

// ---- time zones ----

func TestScheduleTimeZones(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		loc    *time.Location
		cron   string
		wantIn *time.Location
	}{
		{"Location is honoured", ny, "0 2 * * *", ny},
		{"Location is honoured with seconds", ny, "0 0 2 * * *", ny},
		{"Location is honoured by descriptors", ny, "@daily", ny},
		{"UTC", time.UTC, "0 2 * * *", time.UTC},
		{"CRON_TZ overrides Location", ny, "CRON_TZ=Asia/Tokyo 0 2 * * *", tokyo},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTest(t, Options{Runner: newRunner(), Location: tt.loc})
			now := time.Now()
			s.Reconcile([]discovery.Container{ctr("a1", "a", labels.Cron, tt.cron)})
			jobs, _ := s.Jobs()
			if len(jobs) != 1 {
				t.Fatalf("jobs %+v", jobs)
			}
			next := jobs[0].Next.In(tt.wantIn)
			wantHour := 2
			if strings.HasPrefix(tt.cron, "@daily") {
				wantHour = 0
			}
			if next.Hour() != wantHour || next.Minute() != 0 || next.Second() != 0 {
				t.Errorf("next %v (%v in %s), want %02d:00 there", jobs[0].Next, next, tt.wantIn, wantHour)
			}
			if !next.After(now) || next.Sub(now) > 25*time.Hour {
				t.Errorf("next %v is not within a day after %v", next, now)
			}
		})
	}
}

// ---- Jobs() ----

func TestJobsListing(t *testing.T) {
	r := newRunner()
	close(r.release)
	ev := newEventLog()
	s := newTest(t, Options{Runner: r, OnEvent: ev.on})
	s.Reconcile([]discovery.Container{
		ctr("3", "zeta"), ctr("1", "alpha"), ctr("2", "mid"),
		ctr("9", "z-bad", labels.Cron, ""), ctr("8", "a-bad", labels.Type, ""),
	})
	if err := s.Trigger("2"); err != nil {
		t.Fatal(err)
	}
	if e := ev.next(t); e.Outcome != Succeeded || e.Result.Object != "mid.dump" {
		t.Fatalf("event %+v", e)
	}
	jobs, rej := s.Jobs()
	var names []string
	for _, j := range jobs {
		names = append(names, j.Job.ContainerName)
		if j.Next.IsZero() {
			t.Errorf("%s: Next not set", j.Job.ContainerName)
		}
		if j.Busy {
			t.Errorf("%s: busy", j.Job.ContainerName)
		}
		switch {
		case j.Job.ContainerName == "mid" && (j.LastRun == nil || j.LastRun.Outcome != Succeeded || j.LastRun.Result.RunID != "run-mid"):
			t.Errorf("mid: last run %+v", j.LastRun)
		case j.Job.ContainerName != "mid" && j.LastRun != nil:
			t.Errorf("%s: last run %+v without a run", j.Job.ContainerName, j.LastRun)
		}
	}
	if !sort.StringsAreSorted(names) || len(names) != 3 {
		t.Errorf("jobs %v, want 3 sorted by name", names)
	}
	if len(rej) != 2 || rej[0].ContainerName != "a-bad" || rej[1].ContainerName != "z-bad" {
		t.Errorf("rejected %+v, want a-bad, z-bad", rej)
	}
}

// ---- races ----

// Reconcile, Trigger, Jobs, ticks and Stop from many goroutines: run with
// -race. Nothing may deadlock, run after Stop, or report after Stop.
func TestConcurrentUse(t *testing.T) {
	base := runtime.NumGoroutine()
	r := newRunner()
	close(r.release)
	go func() { // drain; the runner's start channel is bounded
		for range r.started {
		}
	}()
	ev := newEventLog()
	s := New(Options{Runner: r, Limit: 2, Location: time.UTC, Logger: hclog.NewNullLogger(), OnEvent: ev.on})
	snaps := [][]discovery.Container{
		{ctr("a1", "a", labels.Cron, "* * * * * *"), ctr("b1", "b")},
		{ctr("a1", "a", labels.Cron, "*/2 * * * * *"), ctr("b2", "b")},
		{ctr("a2", "a"), ctr("b2", "b-renamed")},
		{ctr("a2", "a", labels.Enabled, "false")},
		nil,
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(3)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			s.Reconcile(snaps[i%len(snaps)])
		}
	}()
	go func() {
		defer wg.Done()
		ids := []string{"a1", "a2", "b1", "b2"}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_ = s.Trigger(ids[i%len(ids)])
		}
	}()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			s.Jobs()
			_, _ = s.Queued(), s.Running()
		}
	}()
	time.Sleep(300 * time.Millisecond)
	stopNow(s)
	ev.markStopped()
	runsAtStop, _, _ := r.snapshot()
	time.Sleep(50 * time.Millisecond) // the loops keep calling a stopped scheduler
	close(stop)
	wg.Wait()
	runs, max, _ := r.snapshot()
	if len(runs) != len(runsAtStop) {
		t.Errorf("%d runs started after Stop returned", len(runs)-len(runsAtStop))
	}
	if max > 2 {
		t.Errorf("max concurrency %d with Limit=2", max)
	}
	if len(runs) == 0 {
		t.Error("nothing ran")
	}
	if late := ev.late(); len(late) != 0 {
		t.Errorf("%d events after Stop returned, first %+v", len(late), late[0])
	}
	if s.Running() != 0 || s.Queued() != 0 {
		t.Errorf("after Stop: running %d queued %d", s.Running(), s.Queued())
	}
	close(r.started)
	noLeak(t, base)
}
