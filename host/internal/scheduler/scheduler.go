// Package scheduler keeps exactly one cron job per running labeled
// container. Reconcile converges the job set on a discovery snapshot; each
// job runs on its own schedule, at most one run at a time, and all runs
// share a concurrency limit: due runs beyond it wait in a queue, they are
// never dropped.
//
// A container's successive jobs (after a label change, a rename, or a
// recreate under the same name) share one lineage: they never run at once
// and the last result carries over. A run waiting for a slot when its job
// is replaced follows the container's current job, so it never runs a
// stale spec; when the container is no longer scheduled at all (stopped,
// removed, disabled, labels broken) the waiting run is dropped with a log
// line and no event: there is nothing left to back up.
//
// OnEvent is called from the scheduler's goroutines, possibly at once for
// different containers, and never after Stop has returned. On Stop, every
// run still waiting for a slot ends with a Failed event wrapping
// ErrCancelled; running ones get the grace period, are then cancelled, and
// report whatever their Runner returns.
package scheduler

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/robfig/cron/v3"

	"github.com/labelbackup/label-backup/host/internal/discovery"
	"github.com/labelbackup/label-backup/host/internal/labels"
	"github.com/labelbackup/label-backup/host/internal/pipeline"
)

// Runner performs one backup.
type Runner interface {
	Run(ctx context.Context, job pipeline.Job) pipeline.Result
}

// PluginCheck reports whether a dumper plugin for a database type exists.
type PluginCheck func(dbType string) error

// Outcome says how a run ended.
type Outcome string

// Outcomes.
const (
	Succeeded Outcome = "success"
	Failed    Outcome = "failure"
	// Skipped: the previous run of the same job was still going.
	Skipped Outcome = "skipped"
)

// Errors.
var (
	// ErrBusy: the container's previous backup is still queued or running.
	// Trigger returns it; a skipped tick's event wraps it.
	ErrBusy = errors.New("the previous backup of this container is still queued or running")
	// ErrStopped: Trigger after Stop.
	ErrStopped = errors.New("the scheduler is stopped: the agent is shutting down")
	// ErrCancelled: a due run was still waiting for a slot at Stop; it is
	// reported in a Failed event.
	ErrCancelled = errors.New("cancelled: agent shutting down before the backup started")
)

// Event is one finished, failed or skipped run.
type Event struct {
	Job     pipeline.Job
	Outcome Outcome
	Result  pipeline.Result
}

// Options configure a Scheduler.
type Options struct {
	Runner      Runner
	PluginCheck PluginCheck
	// Limit is the most runs at once.
	Limit  int
	Logger hclog.Logger
	// Location is the zone of schedules without CRON_TZ= (default Local,
	// which honours the TZ variable).
	Location *time.Location
	// OnEvent, when set, is called after every run or skip.
	OnEvent func(Event)
}

// Scheduler owns the cron jobs.
type Scheduler struct {
	opts Options
	cron *cron.Cron
	// stop is closed by Stop: runs waiting for a slot give up.
	stop chan struct{}

	runCtx    context.Context
	cancelRun context.CancelFunc
	// wg counts dispatched runs, queued or running.
	wg      sync.WaitGroup
	queued  atomic.Int64
	running atomic.Int64

	mu       sync.Mutex
	jobs     map[string]*job // by container ID
	rejected map[string]Rejected
	stopped  bool
	// The concurrency limit: inUse of limit slots are taken; waiting
	// holds the due runs' tickets in the order they became due.
	limit   int
	inUse   int
	waiting []*ticket
}

// ticket is a due run's place in the queue; ready is closed when it is
// granted a slot.
type ticket struct {
	ready   chan struct{}
	granted bool
}

// lineage is what a container's successive jobs share.
type lineage struct {
	busy atomic.Bool // a run is queued or running

	mu   sync.Mutex
	last *Event
	// since is when the container was first scheduled; lastSuccess is the
	// start of its last successful run. Freshness is judged from them.
	since       time.Time
	lastSuccess time.Time
}

type job struct {
	pipeline.Job
	entry       cron.EntryID
	fingerprint string
	line        *lineage
	gone        chan struct{} // closed when the job is unscheduled
}

func (j *job) isGone() bool {
	select {
	case <-j.gone:
		return true
	default:
		return false
	}
}

// Rejected is a labeled container that cannot be scheduled.
type Rejected struct {
	ContainerID   string           `json:"container_id"`
	ContainerName string           `json:"container_name"`
	Error         string           `json:"error"`
	Problems      []labels.Problem `json:"problems,omitempty"`
}

// New returns a started Scheduler with no jobs.
func New(opts Options) *Scheduler {
	if opts.Location == nil {
		opts.Location = time.Local
	}
	if opts.Limit <= 0 {
		opts.Limit = 1
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Scheduler{
		opts:      opts,
		cron:      cron.New(cron.WithLocation(opts.Location), cron.WithLogger(cronLogger{opts.Logger})),
		limit:     opts.Limit,
		stop:      make(chan struct{}),
		runCtx:    ctx,
		cancelRun: cancel,
		jobs:      map[string]*job{},
		rejected:  map[string]Rejected{},
	}
	s.cron.Start()
	return s
}

// Reconcile makes the job set match snap: one job per container whose
// labels enable backups and decode cleanly, with the current name and spec.
// After Stop it does nothing.
func (s *Scheduler) Reconcile(snap []discovery.Container) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	inSnap := make(map[string]bool, len(snap))
	for _, c := range snap {
		inSnap[c.ID] = true
	}
	seen := make(map[string]bool, len(snap))
	why := make(map[string]string) // why a container in snap has no job
	rejected := make(map[string]Rejected)
	inherited := make(map[*lineage]bool)
	// Jobs whose container left the snapshot: the only possible
	// predecessors of a recreated container (computed once, not per add).
	orphans := make(map[string][]*job)
	for id, j := range s.jobs {
		if !inSnap[id] {
			orphans[j.ContainerName] = append(orphans[j.ContainerName], j)
		}
	}
	for _, c := range snap {
		spec, err := labels.Decode(c.Labels)
		if err == nil && spec.Enabled && s.opts.PluginCheck != nil {
			err = s.opts.PluginCheck(spec.Type)
		}
		if err != nil {
			r := Rejected{ContainerID: c.ID, ContainerName: c.Name, Error: err.Error()}
			var le *labels.Error
			if errors.As(err, &le) {
				r.Problems = le.Problems
			}
			rejected[c.ID] = r
			why[c.ID] = "labels are invalid"
			if prev, ok := s.rejected[c.ID]; !ok || prev.Error != r.Error {
				// Logged once per distinct problem, not on every reconcile.
				s.opts.Logger.Error("container skipped", "container", c.Name, "error", err)
			}
			continue
		}
		if !spec.Enabled {
			why[c.ID] = "backups disabled"
			continue
		}
		seen[c.ID] = true
		fp := fingerprint(c.Name, spec)
		old := s.jobs[c.ID]
		if old != nil && old.fingerprint == fp {
			continue
		}
		prev := old
		if prev == nil {
			// Recreated: the old container's job has the same name and an
			// id no longer running; it is removed below.
			prev = byName(orphans[c.Name], inherited)
		}
		if prev == nil || !slices.Equal(prev.Spec.Warnings, spec.Warnings) {
			for _, w := range spec.Warnings {
				s.opts.Logger.Warn("label warning", "container", c.Name, "warning", w)
			}
		}
		var line *lineage
		if prev != nil {
			line = prev.line
			inherited[line] = true
		}
		if old != nil {
			s.removeLocked(old, "labels or name changed")
		}
		s.addLocked(pipeline.Job{ContainerID: c.ID, ContainerName: c.Name, Spec: spec}, fp, line)
	}
	for id, j := range s.jobs {
		if !seen[id] {
			reason := why[id]
			if reason == "" {
				reason = "container no longer running or no longer labeled"
			}
			s.removeLocked(j, reason)
		}
	}
	s.rejected = rejected
}

func byName(cands []*job, inherited map[*lineage]bool) *job {
	for _, j := range cands {
		if !inherited[j.line] {
			return j
		}
	}
	return nil
}

func (s *Scheduler) addLocked(pj pipeline.Job, fp string, line *lineage) {
	sched, err := labels.ParseCron(pj.Spec.Cron)
	if err != nil { // Decode already parsed it; kept for safety
		s.opts.Logger.Error("bad schedule", "container", pj.ContainerName, "error", err)
		return
	}
	if line == nil {
		line = &lineage{since: time.Now()}
	}
	j := &job{Job: pj, fingerprint: fp, line: line, gone: make(chan struct{})}
	j.entry = s.cron.Schedule(sched, cron.FuncJob(func() { s.fire(j) }))
	s.jobs[pj.ContainerID] = j
	// sched.Next, not s.cron.Entry: Entry snapshots every entry (O(n) per
	// add, O(n^2) for a full start-up).
	s.opts.Logger.Info("backup scheduled", "container", pj.ContainerName, "type", pj.Spec.Type,
		"cron", pj.Spec.Cron, "next", sched.Next(time.Now().In(s.opts.Location)))
}

func (s *Scheduler) removeLocked(j *job, why string) {
	s.cron.Remove(j.entry)
	close(j.gone)
	delete(s.jobs, j.ContainerID)
	s.opts.Logger.Info("backup unscheduled", "container", j.ContainerName, "reason", why)
}

// currentLocked is the job a due run of j must use: j itself, or, when j
// was replaced, the live job of the same lineage; nil when there is none.
func (s *Scheduler) currentLocked(j *job) *job {
	if !j.isGone() {
		return j
	}
	for _, n := range s.jobs {
		if n.line == j.line {
			return n
		}
	}
	return nil
}

// fingerprint identifies a job's full configuration: any change, secret
// included, replaces the job.
func fingerprint(name string, spec labels.Spec) string {
	h := sha256.New()
	fmt.Fprintf(h, "%q|%+v", name, spec)
	return hex.EncodeToString(h.Sum(nil))
}

var errGone = errors.New("container no longer scheduled")

// beginLocked claims a due run of j: it marks the lineage busy, counts
// the run as queued and puts its ticket at the end of the queue. The
// caller must dispatch it and then call wg.Done.
func (s *Scheduler) beginLocked(j *job) (*job, *ticket, error) {
	j = s.currentLocked(j)
	if j == nil {
		return nil, nil, errGone
	}
	if s.stopped {
		return j, nil, ErrStopped
	}
	if !j.line.busy.CompareAndSwap(false, true) {
		return j, nil, ErrBusy
	}
	s.wg.Add(1)
	s.queued.Add(1)
	t := &ticket{ready: make(chan struct{})}
	s.waiting = append(s.waiting, t)
	s.grantLocked()
	return j, t, nil
}

// grantLocked gives free slots to the longest-waiting tickets.
func (s *Scheduler) grantLocked() {
	for s.inUse < s.limit && len(s.waiting) > 0 && !s.stopped {
		t := s.waiting[0]
		s.waiting[0] = nil
		s.waiting = s.waiting[1:]
		s.inUse++
		t.granted = true
		close(t.ready)
	}
}

// releaseLocked gives back t's slot, or its place in the queue.
func (s *Scheduler) releaseLocked(t *ticket) {
	if t.granted {
		s.inUse--
		s.grantLocked()
		return
	}
	if i := slices.Index(s.waiting, t); i >= 0 {
		s.waiting = slices.Delete(s.waiting, i, i+1)
	}
}

// SetLimit changes the concurrency limit (at least 1). Raising it starts
// waiting runs at once; lowering it stops nothing: new runs start when
// fewer than the new limit run.
func (s *Scheduler) SetLimit(n int) {
	if n <= 0 {
		n = 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limit = n
	s.grantLocked()
}

// Trigger runs a container's backup now, outside its schedule. It returns
// ErrBusy when the container's previous backup is still queued or running
// and ErrStopped after Stop.
func (s *Scheduler) Trigger(containerID string) error {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return ErrStopped
	}
	j, ok := s.jobs[containerID]
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("no scheduled backup for container %q", containerID)
	}
	j, t, err := s.beginLocked(j)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	go func() {
		defer s.wg.Done()
		s.dispatch(j, t)
	}()
	return nil
}

// fire handles a cron tick. It runs in a goroutine of the cron, which Stop
// waits for, so its events never come after Stop returns.
func (s *Scheduler) fire(j *job) {
	s.mu.Lock()
	j, t, err := s.beginLocked(j)
	s.mu.Unlock()
	switch {
	case err == nil:
		defer s.wg.Done()
		s.dispatch(j, t)
	case errors.Is(err, ErrBusy), errors.Is(err, ErrStopped) && j.line.busy.Load():
		s.opts.Logger.Warn("backup skipped: the previous run is still going", "container", j.ContainerName)
		s.finish(j, Event{Job: j.Job, Outcome: Skipped, Result: pipeline.Result{
			Started: time.Now().UTC(),
			Err:     fmt.Errorf("skipped: %w", ErrBusy),
		}}, false)
	case errors.Is(err, ErrStopped):
		// A tick racing Stop: due, never started.
		s.opts.Logger.Warn("backup cancelled: the agent is shutting down", "container", j.ContainerName)
		s.finish(j, Event{Job: j.Job, Outcome: Failed, Result: pipeline.Result{
			Started: time.Now().UTC(),
			Err:     ErrCancelled,
		}}, false)
	}
	// errGone: a tick of a job unscheduled without successor; nothing due.
}

// dispatch waits until t is granted a slot and runs j. The lineage is
// busy and the run counted as queued on entry; on return the slot, the
// lineage and the count are released.
func (s *Scheduler) dispatch(j *job, t *ticket) {
	for {
		select {
		case <-t.ready:
		case <-s.stop:
		case <-j.gone:
		}
		s.mu.Lock()
		if s.stopped {
			s.releaseLocked(t)
			s.mu.Unlock()
			s.cancelQueued(j)
			return
		}
		// Replaced while waiting: the run follows the container's current
		// job and keeps its place; never the stale spec.
		next := s.currentLocked(j)
		if next == nil {
			s.releaseLocked(t)
			s.mu.Unlock()
			s.queued.Add(-1)
			j.line.busy.Store(false)
			s.opts.Logger.Info("queued backup dropped: the container is no longer scheduled", "container", j.ContainerName)
			return
		}
		j = next
		if !t.granted {
			s.mu.Unlock()
			continue
		}
		s.queued.Add(-1)
		s.running.Add(1)
		s.mu.Unlock()
		s.run(j, t)
		return
	}
}

// cancelQueued reports a run that was still waiting at Stop.
func (s *Scheduler) cancelQueued(j *job) {
	s.queued.Add(-1)
	s.opts.Logger.Warn("backup cancelled: the agent is shutting down", "container", j.ContainerName)
	s.finish(j, Event{Job: j.Job, Outcome: Failed, Result: pipeline.Result{
		Started: time.Now().UTC(),
		Err:     ErrCancelled,
	}}, true)
}

// run runs j holding t's slot, which it releases.
func (s *Scheduler) run(j *job, t *ticket) {
	res := s.opts.Runner.Run(s.runCtx, j.Job)
	s.running.Add(-1)
	s.mu.Lock()
	s.releaseLocked(t)
	s.mu.Unlock()
	outcome := Succeeded
	if res.Err != nil {
		outcome = Failed
	}
	s.finish(j, Event{Job: j.Job, Outcome: outcome, Result: res}, true)
}

// finish records e as the lineage's last run, releases the lineage when the
// run held it, then reports e: OnEvent sees the job's final state.
func (s *Scheduler) finish(j *job, e Event, release bool) {
	j.line.mu.Lock()
	j.line.last = &e
	if e.Outcome == Succeeded {
		j.line.lastSuccess = e.Result.Started
	}
	j.line.mu.Unlock()
	if release {
		j.line.busy.Store(false)
	}
	if s.opts.OnEvent != nil {
		s.opts.OnEvent(e)
	}
}

// JobStatus describes one scheduled job for the API.
type JobStatus struct {
	Job     pipeline.Job
	Next    time.Time
	Busy    bool
	LastRun *Event
	// Since is when the container was first scheduled.
	Since time.Time
	// LastSuccess is when the last successful backup started (zero: none
	// yet).
	LastSuccess time.Time
}

// Jobs lists the scheduled jobs by container name, and the rejected
// containers.
func (s *Scheduler) Jobs() ([]JobStatus, []Rejected) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := make(map[cron.EntryID]time.Time, len(s.jobs))
	for _, e := range s.cron.Entries() {
		next[e.ID] = e.Next
	}
	out := make([]JobStatus, 0, len(s.jobs))
	for _, j := range s.jobs {
		j.line.mu.Lock()
		last, since, ok := j.line.last, j.line.since, j.line.lastSuccess
		j.line.mu.Unlock()
		out = append(out, JobStatus{Job: j.Job, Next: next[j.entry], Busy: j.line.busy.Load(), LastRun: last, Since: since, LastSuccess: ok})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Job.ContainerName < out[b].Job.ContainerName })
	rej := make([]Rejected, 0, len(s.rejected))
	for _, r := range s.rejected {
		rej = append(rej, r)
	}
	sort.Slice(rej, func(a, b int) bool { return rej[a].ContainerName < rej[b].ContainerName })
	return out, rej
}

// Counts is how many containers are scheduled and how many rejected: what
// Jobs returns, without building it (metrics ask on every scrape).
func (s *Scheduler) Counts() (jobs, rejected int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.jobs), len(s.rejected)
}

// Queued is how many due runs wait for a slot; Running how many run.
func (s *Scheduler) Queued() int64  { return s.queued.Load() }
func (s *Scheduler) Running() int64 { return s.running.Load() }

// Stop starts no new runs: runs waiting for a slot end at once with a
// Failed event wrapping ErrCancelled. It waits for running ones until ctx
// is done, then cancels them and waits for them to wind down. No event is
// reported after Stop returns. Calling it again is harmless.
func (s *Scheduler) Stop(ctx context.Context) {
	s.mu.Lock()
	if !s.stopped {
		s.stopped = true
		close(s.stop)
	}
	s.mu.Unlock()
	// cron's own context waits for every tick goroutine to end; runs are
	// tracked by wg as well so that the grace period applies to them.
	ticks := s.cron.Stop()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		<-ticks.Done()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.cancelRun()
		<-done
	}
	s.cancelRun()
}

// cronLogger routes robfig/cron's logging to hclog.
type cronLogger struct{ l hclog.Logger }

func (c cronLogger) Info(msg string, kv ...any) { c.l.Trace(msg, kv...) }
func (c cronLogger) Error(err error, msg string, kv ...any) {
	c.l.Error(msg, append(kv, "error", err)...)
}
