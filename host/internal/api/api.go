// Package api serves the agent's HTTP endpoints. Nothing it returns ever
// contains a connection string, a webhook token or an absolute path.
package api

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/labelbackup/label-backup/host/internal/labels"
	"github.com/labelbackup/label-backup/host/internal/period"
	"github.com/labelbackup/label-backup/host/internal/pipeline"
	"github.com/labelbackup/label-backup/host/internal/scheduler"
)

// Jobs is what the API needs from the scheduler.
type Jobs interface {
	Jobs() ([]scheduler.JobStatus, []scheduler.Rejected)
	Trigger(containerID string) error
	Queued() int64
	Running() int64
}

// Server holds the handlers' dependencies.
type Server struct {
	jobs Jobs
}

// New returns the API handler.
func New(jobs Jobs) http.Handler {
	s := &Server{jobs: jobs}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /jobs", s.listJobs)
	mux.HandleFunc("POST /jobs/{id}/run", s.runJob)
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
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
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
		v.LastRun = r
	}
	return v
}

func (s *Server) listJobs(w http.ResponseWriter, _ *http.Request) {
	jobs, rejected := s.jobs.Jobs()
	views := make([]JobView, len(jobs))
	for i, j := range jobs {
		views[i] = view(j)
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"jobs":     views,
		"rejected": rejected,
		"queued":   s.jobs.Queued(),
		"running":  s.jobs.Running(),
	})
}

func (s *Server) runJob(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	jobs, _ := s.jobs.Jobs()
	for _, j := range jobs {
		// Accept the full id, a unique 12-char short id, or the name.
		if j.Job.ContainerID == id || j.Job.ContainerName == id || (len(id) >= 12 && len(j.Job.ContainerID) >= len(id) && j.Job.ContainerID[:len(id)] == id) {
			if err := s.jobs.Trigger(j.Job.ContainerID); err != nil {
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
