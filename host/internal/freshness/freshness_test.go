package freshness

import (
	"testing"
	"time"

	"github.com/labelbackup/label-backup/host/internal/labels"
	"github.com/labelbackup/label-backup/host/internal/pipeline"
	"github.com/labelbackup/label-backup/host/internal/scheduler"
)

func job(cron string, since, lastSuccess time.Time) scheduler.JobStatus {
	return scheduler.JobStatus{
		Job:         pipeline.Job{ContainerName: "db", Spec: labels.Spec{Cron: cron}},
		Since:       since,
		LastSuccess: lastSuccess,
	}
}

func TestEvaluate(t *testing.T) {
	day := time.Date(2025, 1, 10, 0, 0, 0, 0, time.Local)
	at := func(h, m int) time.Time { return day.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute) }
	tests := []struct {
		name  string
		job   scheduler.JobStatus
		now   time.Time
		stale bool
	}{
		{"daily, succeeded this morning", job("0 2 * * *", at(-100, 0), at(2, 0)), at(23, 0), false},
		{"daily, next run not due yet", job("0 2 * * *", at(-100, 0), at(2, 0)), day.Add(26*time.Hour + 20*time.Minute), false},
		{"daily, missed by more than the timeout", job("0 2 * * *", at(-100, 0), at(2, 0)), day.Add(26*time.Hour + 32*time.Minute), true},
		{"never succeeded, first run not due", job("0 2 * * *", at(1, 0), time.Time{}), at(1, 30), false},
		{"never succeeded, first run missed", job("0 2 * * *", at(1, 0), time.Time{}), at(3, 0), true},
		{"every minute, recent", job("* * * * *", at(0, 0), at(9, 59)), at(10, 1), false},
		{"every minute, stalled", job("* * * * *", at(0, 0), at(9, 0)), at(10, 0), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Evaluate([]scheduler.JobStatus{tt.job}, 30*time.Minute, tt.now)
			if len(got) != 1 || got[0].Stale != tt.stale {
				t.Errorf("Evaluate = %+v, want stale=%v", got, tt.stale)
			}
		})
	}
}
