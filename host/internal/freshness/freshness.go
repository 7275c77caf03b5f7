// Package freshness tells whether each container's last successful backup
// is as recent as its schedule allows: after a success (or, before the
// first one, after the container was scheduled) the next scheduled backup
// must have succeeded by its due time plus the backup timeout and a minute
// of slack. A missed, failed or skipped run therefore shows as stale until
// a backup succeeds again.
package freshness

import (
	"sort"
	"time"

	"github.com/labelbackup/label-backup/host/internal/labels"
	"github.com/labelbackup/label-backup/host/internal/scheduler"
)

// Slack is added to the backup timeout before a due backup counts as missed.
const Slack = time.Minute

// Status is one container's freshness.
type Status struct {
	ContainerName string     `json:"container_name"`
	ContainerID   string     `json:"container_id"`
	Cron          string     `json:"cron_schedule"`
	LastSuccess   *time.Time `json:"last_success,omitempty"`
	// DueBy is when a newer successful backup must exist.
	DueBy time.Time `json:"due_by"`
	Stale bool      `json:"stale"`
}

// Evaluate judges every job as of now.
func Evaluate(jobs []scheduler.JobStatus, timeout time.Duration, now time.Time) []Status {
	out := make([]Status, 0, len(jobs))
	for _, j := range jobs {
		sched, err := labels.ParseCron(j.Job.Spec.Cron)
		if err != nil {
			continue // cannot happen for a scheduled job
		}
		base := j.Since
		st := Status{ContainerName: j.Job.ContainerName, ContainerID: j.Job.ContainerID, Cron: j.Job.Spec.Cron}
		if !j.LastSuccess.IsZero() {
			base = j.LastSuccess
			t := j.LastSuccess
			st.LastSuccess = &t
		}
		st.DueBy = sched.Next(base).Add(timeout + Slack)
		st.Stale = now.After(st.DueBy)
		out = append(out, st)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].ContainerName < out[b].ContainerName })
	return out
}
