// Package api serves the agent's HTTP endpoints. Nothing it returns ever
// contains a connection string, a webhook token or an absolute path.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/labelbackup/label-backup/host/internal/freshness"
	"github.com/labelbackup/label-backup/host/internal/labels"
	"github.com/labelbackup/label-backup/host/internal/period"
	"github.com/labelbackup/label-backup/host/internal/pipeline"
	"github.com/labelbackup/label-backup/host/internal/readiness"
	"github.com/labelbackup/label-backup/host/internal/scheduler"
	"github.com/labelbackup/label-backup/sdk"
)

// Jobs is what the API needs from the scheduler.
type Jobs interface {
	Jobs() ([]scheduler.JobStatus, []scheduler.Rejected)
	Trigger(containerID string) error
	Queued() int64
	Running() int64
}

// Readiness reports the last readiness checks.
type Readiness interface {
	Status(ctx context.Context) (bool, []readiness.Result)
}

// MetadataSource reads a backup's metadata file through the sink holding
// it. It returns pipeline.ErrInvalidKey or sdk.ErrNotFound as appropriate.
type MetadataSource interface {
	ReadMetadata(ctx context.Context, key string) ([]byte, error)
}

// Deps are the API's collaborators.
type Deps struct {
	Jobs      Jobs
	Readiness Readiness
	Metadata  MetadataSource
	Metrics   http.Handler
	// Freshness judges each container's last successful backup.
	Freshness func() []freshness.Status
	// Alive reports whether the agent's loops are running.
	Alive func() error
}

// Server holds the handlers' dependencies.
type Server struct {
	Deps
}

// New returns the API handler.
func New(d Deps) http.Handler {
	s := &Server{Deps: d}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("GET /metadata", s.metadata)
	mux.HandleFunc("GET /jobs", s.listJobs)
	mux.HandleFunc("GET /freshness", s.freshness)
	mux.HandleFunc("POST /jobs/{id}/run", s.runJob)
	if d.Metrics != nil {
		mux.Handle("GET /metrics", d.Metrics)
	}
	return mux
}

// NewHTTPServer wraps h with timeouts: a slow or idle client never holds
// the agent's resources for long.
func NewHTTPServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	if s.Alive != nil {
		if err := s.Alive(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unhealthy", "error": err.Error()})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 200 when every readiness check passed, else 503, with one
// line per check either way.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	ready, results := s.Readiness.Status(ctx)
	code := http.StatusOK
	if !ready {
		code = http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	for _, line := range readiness.Lines(results) {
		fmt.Fprintln(w, line)
	}
}

// freshness lists every container's freshness: 200 when all are fresh,
// 503 when any container's last successful backup is older than its
// schedule allows (so it can serve as a monitoring probe).
func (s *Server) freshness(w http.ResponseWriter, _ *http.Request) {
	st := s.Freshness()
	code := http.StatusOK
	var stale []string
	for _, f := range st {
		if f.Stale {
			code = http.StatusServiceUnavailable
			stale = append(stale, f.ContainerName)
		}
	}
	writeJSON(w, code, map[string]any{"stale": stale, "containers": st})
}

// metadata serves the metadata JSON of ?object=<backup key>.
func (s *Server) metadata(w http.ResponseWriter, r *http.Request) {
	key := r.URL.Query().Get("object")
	if key == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "missing ?object=<backup key>"})
		return
	}
	body, err := s.Metadata.ReadMetadata(r.Context(), key)
	switch {
	case errors.Is(err, pipeline.ErrInvalidKey):
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "object is not a backup name this agent writes"})
	case errors.Is(err, sdk.ErrNotFound):
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such backup"})
	case err != nil:
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": "storage unavailable"})
	default:
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}
}

// JobView is a job as the API shows it: settings without secrets.
type JobView struct {
	ContainerID   string     `json:"container_id"`
	ContainerName string     `json:"container_name"`
	DatabaseType  string     `json:"database_type"`
	DatabaseName  string     `json:"database_name,omitempty"`
	Cron          string     `json:"cron_schedule"`
	Destination   string     `json:"destination_type"`
	Prefix        string     `json:"backup_prefix,omitempty"`
	Retention     string     `json:"retention,omitempty"`
	Compression   string     `json:"compression,omitempty"`
	Webhook       string     `json:"webhook,omitempty"`
	Warnings      []string   `json:"warnings,omitempty"`
	NextRun       *time.Time `json:"next_run,omitempty"`
	Busy          bool       `json:"busy"`
	LastRun       *RunView   `json:"last_run,omitempty"`
}

// RunView is one run's outcome.
type RunView struct {
	RunID           string    `json:"run_id,omitempty"`
	Outcome         string    `json:"outcome"`
	Started         time.Time `json:"started"`
	DurationSeconds float64   `json:"duration_seconds"`
	Object          string    `json:"object,omitempty"`
	SizeBytes       int64     `json:"size_bytes,omitempty"`
	Error           string    `json:"error,omitempty"`
	// Retention is what the prune after this backup deleted (or, in a dry
	// run, would have).
	Retention *RetentionView `json:"retention,omitempty"`
}

// RetentionView is one prune's outcome.
type RetentionView struct {
	Deleted []string `json:"deleted"`
	Kept    int      `json:"kept"`
	DryRun  bool     `json:"dry_run,omitempty"`
	Errors  []string `json:"errors,omitempty"`
}

func view(j scheduler.JobStatus) JobView {
	spec := j.Job.Spec
	v := JobView{
		ContainerID:   j.Job.ContainerID,
		ContainerName: j.Job.ContainerName,
		DatabaseType:  spec.Type,
		DatabaseName:  pipeline.DatabaseName(spec),
		Cron:          spec.Cron,
		Destination:   pipeline.DestinationType(spec.Dest),
		Prefix:        spec.Prefix,
		Compression:   spec.Compression,
		Warnings:      spec.Warnings,
		Busy:          j.Busy,
	}
	if spec.Retention > 0 {
		v.Retention = period.Format(spec.Retention)
	}
	if spec.Webhook != "" {
		v.Webhook = labels.RedactURL(spec.Webhook)
	}
	if !j.Next.IsZero() {
		next := j.Next
		v.NextRun = &next
	}
	if e := j.LastRun; e != nil {
		r := &RunView{
			RunID:           e.Result.RunID,
			Outcome:         string(e.Outcome),
			Started:         e.Result.Started,
			DurationSeconds: e.Result.Duration.Seconds(),
			Object:          e.Result.Object,
			SizeBytes:       e.Result.Size,
		}
		if e.Result.Err != nil {
			r.Error = e.Result.Err.Error()
		}
		if rep := e.Result.Retention; rep != nil {
			r.Retention = &RetentionView{Deleted: rep.Deleted, Kept: rep.Kept, DryRun: rep.DryRun, Errors: rep.Errors}
			if r.Retention.Deleted == nil {
				r.Retention.Deleted = []string{}
			}
		}
		v.LastRun = r
	}
	return v
}

func (s *Server) listJobs(w http.ResponseWriter, _ *http.Request) {
	jobs, rejected := s.Jobs.Jobs()
	views := make([]JobView, len(jobs))
	for i, j := range jobs {
		views[i] = view(j)
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"jobs":     views,
		"rejected": rejected,
		"queued":   s.Jobs.Queued(),
		"running":  s.Jobs.Running(),
	})
}

func (s *Server) runJob(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	jobs, _ := s.Jobs.Jobs()
	for _, j := range jobs {
		// Accept the full id, a unique 12-char short id, or the name.
		if j.Job.ContainerID == id || j.Job.ContainerName == id || (len(id) >= 12 && len(j.Job.ContainerID) >= len(id) && j.Job.ContainerID[:len(id)] == id) {
			if err := s.Jobs.Trigger(j.Job.ContainerID); err != nil {
				writeJSON(w, http.StatusConflict, map[string]string{"error": err.Error()})
				return
			}
			writeJSON(w, http.StatusAccepted, map[string]string{"status": "triggered", "container_id": j.Job.ContainerID})
			return
		}
	}
	writeJSON(w, http.StatusNotFound, map[string]string{"error": "no scheduled backup for that container"})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
