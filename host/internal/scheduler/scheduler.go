// Package scheduler keeps exactly one cron job per running labeled
// container. Reconcile converges the job set on a discovery snapshot; each
// job runs on its own schedule, at most one run at a time, and all runs
// share a concurrency limit: due runs beyond it wait in a queue, they are
// never dropped.
package scheduler

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
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
	opts  Options
	cron  *cron.Cron
	slots chan struct{}

	runCtx    context.Context
	cancelRun context.CancelFunc
	wg        sync.WaitGroup
	queued    atomic.Int64
	running   atomic.Int64

	mu       sync.Mutex
	jobs     map[string]*job // by container ID
	rejected map[string]Rejected
	stopped  bool
}

type job struct {
	pipeline.Job
	entry       cron.EntryID
	fingerprint string
	busy        atomic.Bool // queued or running
	removed     atomic.Bool

	mu   sync.Mutex
	last *Event
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
	ctx, cancel := context.WithCancel(context.Background())
	s := &Scheduler{
		opts:      opts,
		cron:      cron.New(cron.WithLocation(opts.Location), cron.WithLogger(cronLogger{opts.Logger})),
		slots:     make(chan struct{}, opts.Limit),
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
func (s *Scheduler) Reconcile(snap []discovery.Container) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := make(map[string]bool, len(snap))
	rejected := make(map[string]Rejected)
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
			if prev, ok := s.rejected[c.ID]; !ok || prev.Error != r.Error {
				// Logged once per distinct problem, not on every reconcile.
				s.opts.Logger.Error("container skipped", "container", c.Name, "error", err)
			}
			continue
		}
		if !spec.Enabled {
			continue
		}
		for _, w := range spec.Warnings {
			if _, ok := s.jobs[c.ID]; !ok {
				s.opts.Logger.Warn("label warning", "container", c.Name, "warning", w)
			}
		}
		seen[c.ID] = true
		fp := fingerprint(c.Name, spec)
		if j, ok := s.jobs[c.ID]; ok {
			if j.fingerprint == fp {
				continue
			}
			s.removeLocked(j, "labels or name changed")
		}
		s.addLocked(pipeline.Job{ContainerID: c.ID, ContainerName: c.Name, Spec: spec}, fp)
	}
	for id, j := range s.jobs {
		if !seen[id] {
			s.removeLocked(j, "container no longer running or no longer labeled")
		}
	}
	s.rejected = rejected
}

func (s *Scheduler) addLocked(pj pipeline.Job, fp string) {
	sched, err := labels.ParseCron(pj.Spec.Cron)
	if err != nil { // Decode already parsed it; kept for safety
		s.opts.Logger.Error("bad schedule", "container", pj.ContainerName, "error", err)
		return
	}
	j := &job{Job: pj, fingerprint: fp}
	j.entry = s.cron.Schedule(sched, cron.FuncJob(func() { s.fire(j) }))
	s.jobs[pj.ContainerID] = j
	s.opts.Logger.Info("backup scheduled", "container", pj.ContainerName, "type", pj.Spec.Type,
		"cron", pj.Spec.Cron, "next", s.cron.Entry(j.entry).Next)
}

func (s *Scheduler) removeLocked(j *job, why string) {
	s.cron.Remove(j.entry)
	j.removed.Store(true)
	delete(s.jobs, j.ContainerID)
	s.opts.Logger.Info("backup unscheduled", "container", j.ContainerName, "reason", why)
}

// fingerprint identifies a job's full configuration: any change, secret
// included, replaces the job.
func fingerprint(name string, spec labels.Spec) string {
	h := sha256.New()
	fmt.Fprintf(h, "%q|%+v", name, spec)
	return hex.EncodeToString(h.Sum(nil))
}

// Trigger runs a container's backup now, outside its schedule.
func (s *Scheduler) Trigger(containerID string) error {
	s.mu.Lock()
	j, ok := s.jobs[containerID]
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("no scheduled backup for container %q", containerID)
	}
	go s.fire(j)
	return nil
}

// fire runs one due backup: skipped when the job's previous run is still
// queued or running, otherwise queued for a concurrency slot.
func (s *Scheduler) fire(j *job) {
	if !j.busy.CompareAndSwap(false, true) {
		s.opts.Logger.Warn("backup skipped: the previous run is still going", "container", j.ContainerName)
		s.record(j, Event{Job: j.Job, Outcome: Skipped, Result: pipeline.Result{
			Started: time.Now().UTC(),
			Err:     errors.New("skipped: the previous backup of this container is still running"),
		}})
		return
	}
	defer j.busy.Store(false)
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	s.queued.Add(1)
	select {
	case s.slots <- struct{}{}:
		s.queued.Add(-1)
	case <-s.runCtx.Done():
		s.queued.Add(-1)
		return
	}
	defer func() { <-s.slots }()
	if j.removed.Load() {
		// Replaced or unscheduled while waiting: never run a stale spec.
		return
	}
	s.running.Add(1)
	res := s.opts.Runner.Run(s.runCtx, j.Job)
	s.running.Add(-1)
	outcome := Succeeded
	if res.Err != nil {
		outcome = Failed
	}
	s.record(j, Event{Job: j.Job, Outcome: outcome, Result: res})
}

func (s *Scheduler) record(j *job, e Event) {
	j.mu.Lock()
	j.last = &e
	j.mu.Unlock()
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
}

// Jobs lists the scheduled jobs by container name, and the rejected
// containers.
func (s *Scheduler) Jobs() ([]JobStatus, []Rejected) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]JobStatus, 0, len(s.jobs))
	for _, j := range s.jobs {
		j.mu.Lock()
		last := j.last
		j.mu.Unlock()
		out = append(out, JobStatus{Job: j.Job, Next: s.cron.Entry(j.entry).Next, Busy: j.busy.Load(), LastRun: last})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Job.ContainerName < out[b].Job.ContainerName })
	rej := make([]Rejected, 0, len(s.rejected))
	for _, r := range s.rejected {
		rej = append(rej, r)
	}
	sort.Slice(rej, func(a, b int) bool { return rej[a].ContainerName < rej[b].ContainerName })
	return out, rej
}

// Queued is how many due runs wait for a slot; Running how many run.
func (s *Scheduler) Queued() int64  { return s.queued.Load() }
func (s *Scheduler) Running() int64 { return s.running.Load() }

// Stop starts no new runs and waits for running ones until ctx is done;
// then it cancels them and waits for them to wind down.
func (s *Scheduler) Stop(ctx context.Context) {
	// cron's own Stop context would wait for every run to end; we track
	// runs ourselves so that the grace period applies.
	s.cron.Stop()
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	s.cancelRun()
	<-done
}

// cronLogger routes robfig/cron's logging to hclog.
type cronLogger struct{ l hclog.Logger }

func (c cronLogger) Info(msg string, kv ...any) { c.l.Trace(msg, kv...) }
func (c cronLogger) Error(err error, msg string, kv ...any) {
	c.l.Error(msg, append(kv, "error", err)...)
}
