package agent

import (
	"time"

	"github.com/labelbackup/label-backup/host/internal/pipeline"
	"github.com/labelbackup/label-backup/host/internal/scheduler"
	"github.com/labelbackup/label-backup/host/internal/webhook"
)

// payload turns a finished, failed or skipped run into the documented
// webhook payload.
func payload(e scheduler.Event, now time.Time) webhook.Payload {
	spec := e.Job.Spec
	p := webhook.Payload{
		ContainerID:     e.Job.ContainerID,
		ContainerName:   e.Job.ContainerName,
		DatabaseType:    spec.Type,
		DatabaseName:    pipeline.DatabaseName(spec),
		Success:         e.Outcome == scheduler.Succeeded,
		DurationSeconds: e.Result.Duration.Seconds(),
		TimestampUTC:    webhook.Timestamp(now),
		CronSchedule:    spec.Cron,
		BackupPrefix:    spec.Prefix,
		DestinationType: pipeline.DestinationType(spec.Dest),
	}
	if p.Success {
		p.DestinationURL = e.Result.URL
		p.BackupSizeBytes = webhook.Size(e.Result.Size)
	} else if e.Result.Err != nil {
		p.Error = e.Result.Err.Error()
	} else {
		p.Error = string(e.Outcome)
	}
	return p
}

// webhookURL is the receiver of a job's notifications: backup.webhook,
// else WEBHOOK_URL, else none.
func webhookURL(e scheduler.Event, global string) string {
	if e.Job.Spec.Webhook != "" {
		return e.Job.Spec.Webhook
	}
	return global
}
