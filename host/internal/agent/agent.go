// Package agent wires discovery, scheduling, the backup pipeline,
// retention, webhooks, metrics and the HTTP API into the daemon.
package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/robfig/cron/v3"

	"github.com/labelbackup/label-backup/host/internal/api"
	"github.com/labelbackup/label-backup/host/internal/config"
	"github.com/labelbackup/label-backup/host/internal/discovery"
	"github.com/labelbackup/label-backup/host/internal/labels"
	"github.com/labelbackup/label-backup/host/internal/metrics"
	"github.com/labelbackup/label-backup/host/internal/pipeline"
	"github.com/labelbackup/label-backup/host/internal/pluginmgr"
	"github.com/labelbackup/label-backup/host/internal/readiness"
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
	installed, broken := plugins.List()
	for _, e := range installed {
		logger.Info("plugin", "name", e.Info.Name, "kind", e.Info.Kind, "version", e.Info.Version)
	}

	docker, err := discovery.NewClient()
	if err != nil {
		return err
	}
	defer docker.Close()

	runner := pipeline.New(plugins, pipeline.SettingsFrom(cfg), logger.Named("backup"))

	var sched *scheduler.Scheduler
	m := metrics.New(metrics.Gauges{
		Queued:   func() float64 { return float64(sched.Queued()) },
		Running:  func() float64 { return float64(sched.Running()) },
		Jobs:     func() float64 { j, _ := sched.Jobs(); return float64(len(j)) },
		Rejected: func() float64 { _, r := sched.Jobs(); return float64(len(r)) },
	})
	notifier := webhook.New(webhook.Options{
		Secret:     cfg.Webhook.Secret,
		Timeout:    cfg.Webhook.Timeout,
		MaxRetries: cfg.Webhook.MaxRetries,
		Logger:     logger.Named("webhook"),
		OnResult: func(r webhook.Result) {
			m.Webhook(r.Receiver, string(r.Outcome), r.BreakerOpen)
		},
	})
	sched = scheduler.New(scheduler.Options{
		OnEvent: func(e scheduler.Event) {
			record(m, e)
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
		for name, rep := range reports {
			if !rep.DryRun {
				m.RetentionDeleted(name, len(rep.Deleted))
			}
		}
		logger.Info("retention sweep done", "containers", len(reports))
	}))
	sweep.Start()
	defer sweep.Stop()

	ready := readiness.New(15*time.Second, 10*time.Second, checks(cfg, docker, plugins, runner, broken)...)
	go ready.Run(ctx)

	var running atomic.Bool
	running.Store(true)
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("HTTP_ADDR %s: %w", cfg.HTTPAddr, err)
	}
	srv := api.NewHTTPServer(cfg.HTTPAddr, api.New(api.Deps{
		Jobs:      sched,
		Readiness: ready,
		Metadata:  runner,
		Metrics:   m.Handler(),
		Alive: func() error {
			if !running.Load() {
				return errors.New("shutting down")
			}
			return nil
		},
	}))
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
	running.Store(false)

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

// record turns a run's outcome into metrics.
func record(m *metrics.Metrics, e scheduler.Event) {
	result := "failure"
	switch e.Outcome {
	case scheduler.Succeeded:
		result = "success"
	case scheduler.Skipped:
		result = "skipped"
	}
	m.Backup(e.Job.ContainerName, result, e.Result.Duration, e.Result.Size, e.Result.Started.Add(e.Result.Duration))
	if rep := e.Result.Retention; rep != nil && !rep.DryRun {
		m.RetentionDeleted(e.Job.ContainerName, len(rep.Deleted))
	}
}

// checks are the readiness conditions: the Docker engine answers, the
// plugins load, and each configured storage is usable.
func checks(cfg config.Config, docker discovery.Pinger, plugins *pluginmgr.Manager, runner *pipeline.Runner, broken map[string]string) []readiness.Check {
	out := []readiness.Check{
		{Name: "docker", Fn: func(ctx context.Context) error {
			if _, err := docker.Ping(ctx); err != nil {
				return fmt.Errorf("docker engine unreachable: %w", err)
			}
			return nil
		}},
		{Name: "plugins", Fn: func(context.Context) error {
			for file, why := range broken {
				return fmt.Errorf("%s rejected: %s", file, why)
			}
			if _, err := plugins.Lookup(sdk.KindSink, "local"); err != nil {
				return err
			}
			if cfg.S3.Configured() {
				if _, err := plugins.Lookup(sdk.KindSink, "s3"); err != nil {
					return err
				}
			}
			return nil
		}},
		{Name: "local storage", Fn: func(ctx context.Context) error {
			_, err := runner.CheckStorage(ctx, labels.DestLocal)
			return err
		}},
	}
	if cfg.S3.Configured() {
		out = append(out, readiness.Check{Name: "s3 bucket " + cfg.S3.Bucket, Fn: func(ctx context.Context) error {
			_, err := runner.CheckStorage(ctx, labels.DestRemote)
			return err
		}})
	}
	return out
}
