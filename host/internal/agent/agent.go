// Package agent wires discovery, scheduling, the backup pipeline and the
// HTTP API into the long-running daemon.
package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/robfig/cron/v3"

	"github.com/labelbackup/label-backup/host/internal/api"
	"github.com/labelbackup/label-backup/host/internal/config"
	"github.com/labelbackup/label-backup/host/internal/discovery"
	"github.com/labelbackup/label-backup/host/internal/labels"
	"github.com/labelbackup/label-backup/host/internal/pipeline"
	"github.com/labelbackup/label-backup/host/internal/pluginmgr"
	"github.com/labelbackup/label-backup/host/internal/retention"
	"github.com/labelbackup/label-backup/host/internal/scheduler"
	"github.com/labelbackup/label-backup/host/internal/webhook"
	"github.com/labelbackup/label-backup/sdk"
)

// ShutdownGrace is how long running backups may finish after a stop signal
// before they are cancelled; well within Docker's 10 s stop timeout.
const ShutdownGrace = 5 * time.Second

// Run runs the agent until ctx is done.
func Run(ctx context.Context, cfg config.Config, logger hclog.Logger) error {
	plugins, err := pluginmgr.New(ctx, cfg.PluginDir, logger.Named("plugins"))
	if err != nil {
		return err
	}
	installed, _ := plugins.List()
	for _, e := range installed {
		logger.Info("plugin", "name", e.Info.Name, "kind", e.Info.Kind, "version", e.Info.Version)
	}

	docker, err := discovery.NewClient()
	if err != nil {
		return err
	}
	defer docker.Close()

	settings := pipeline.Settings{
		Compression: cfg.Compression,
		Timeout:     cfg.BackupTimeout,
		LocalPath:   cfg.LocalBackupPath,
	}
	if cfg.S3.Configured() {
		settings.Remote = cfg.S3.SinkSettings()
	}
	settings.Retention = retention.Policy{
		Period:   cfg.Retention.Period,
		KeepLast: cfg.Retention.KeepLast,
		DryRun:   cfg.Retention.DryRun,
	}
	runner := pipeline.New(plugins, settings, logger.Named("backup"))
	notifier := webhook.New(webhook.Options{
		Secret:     cfg.Webhook.Secret,
		Timeout:    cfg.Webhook.Timeout,
		MaxRetries: cfg.Webhook.MaxRetries,
		Logger:     logger.Named("webhook"),
	})
	sched := scheduler.New(scheduler.Options{
		OnEvent: func(e scheduler.Event) {
			if url := webhookURL(e, cfg.Webhook.URL); url != "" {
				notifier.Send(url, payload(e, time.Now()))
			}
		},
		Runner: runner,
		PluginCheck: func(dbType string) error {
			_, err := plugins.Lookup(sdk.KindDumper, dbType)
			return err
		},
		Limit:  cfg.ConcurrentBackupLimit,
		Logger: logger.Named("scheduler"),
	})

	// The retention sweep covers every scheduled container, also those whose
	// backups keep failing (their prune never runs after a success).
	sweep := cron.New(cron.WithLocation(time.Local))
	sweepSchedule, err := labels.ParseCron(cfg.Retention.Schedule)
	if err != nil {
		return fmt.Errorf("GC_SCHEDULE: %w", err)
	}
	sweep.Schedule(sweepSchedule, cron.FuncJob(func() {
		jobs, _ := sched.Jobs()
		pjobs := make([]pipeline.Job, len(jobs))
		for i, j := range jobs {
			pjobs[i] = j.Job
		}
		reports := runner.Prune(ctx, pjobs)
		logger.Info("retention sweep done", "containers", len(reports))
	}))
	sweep.Start()
	defer sweep.Stop()

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("HTTP_ADDR %s: %w", cfg.HTTPAddr, err)
	}
	srv := api.NewHTTPServer(cfg.HTTPAddr, api.New(sched))
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("http server stopped", "error", err)
		}
	}()
	logger.Info("agent started", "http", ln.Addr().String(), "plugin_dir", cfg.PluginDir, "local_backup_path", cfg.LocalBackupPath)

	watcher := discovery.New(docker, cfg.ReconcileInterval, logger.Named("discovery"))
	snaps := make(chan []discovery.Container)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		_ = watcher.Run(ctx, snaps)
	}()
loop:
	for {
		select {
		case snap := <-snaps:
			sched.Reconcile(snap)
		case <-ctx.Done():
			break loop
		}
	}
	<-watchDone

	logger.Info("shutting down", "grace", ShutdownGrace)
	graceCtx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
	defer cancel()
	sched.Stop(graceCtx)
	// Only after the scheduler: runs ending during the grace period still
	// notify. Queued notifications get a bounded time to go out.
	notifyCtx, cancelNotify := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancelNotify()
	notifier.Close(notifyCtx)
	httpCtx, cancelHTTP := context.WithTimeout(context.Background(), time.Second)
	defer cancelHTTP()
	_ = srv.Shutdown(httpCtx)
	logger.Info("stopped")
	return nil
}
