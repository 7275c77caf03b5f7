// Package agent wires discovery, scheduling, the backup pipeline,
// retention, webhooks, metrics and the HTTP API into the daemon, and
// applies configuration reloads.
package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/robfig/cron/v3"

	"github.com/labelbackup/label-backup/host/internal/api"
	"github.com/labelbackup/label-backup/host/internal/config"
	"github.com/labelbackup/label-backup/host/internal/discovery"
	"github.com/labelbackup/label-backup/host/internal/freshness"
	"github.com/labelbackup/label-backup/host/internal/labels"
	"github.com/labelbackup/label-backup/host/internal/metrics"
	"github.com/labelbackup/label-backup/host/internal/pipeline"
	"github.com/labelbackup/label-backup/host/internal/pluginmgr"
	"github.com/labelbackup/label-backup/host/internal/readiness"
	"github.com/labelbackup/label-backup/host/internal/scheduler"
	"github.com/labelbackup/label-backup/host/internal/webhook"
	"github.com/labelbackup/label-backup/sdk"
)

// Reloader produces a new configuration on request (a SIGHUP).
type Reloader func() (config.Config, error)

// agent holds the long-lived components.
type agent struct {
	logger  hclog.Logger
	cfg     atomic.Pointer[config.Config]
	plugins *pluginmgr.Manager
	runner  *pipeline.Runner
	sched   *scheduler.Scheduler
	watcher *discovery.Watcher
	metrics *metrics.Metrics

	// notifyMu guards notifier: sends hold it shared, a reload swaps the
	// notifier under it exclusively, so no send ever hits a closed one.
	notifyMu sync.RWMutex
	notifier *webhook.Notifier

	sweepMu sync.Mutex
	sweep   *cron.Cron
}

// Run runs the agent until ctx is done. Each value on reloads asks for the
// configuration to be re-read and applied.
func Run(ctx context.Context, cfg config.Config, logger hclog.Logger, reloads <-chan os.Signal, reload Reloader) error {
	a := &agent{logger: logger}
	a.cfg.Store(&cfg)
	var err error
	if a.plugins, err = pluginmgr.New(ctx, cfg.PluginDir, logger.Named("plugins")); err != nil {
		return err
	}
	installed, _ := a.plugins.List()
	for _, e := range installed {
		logger.Info("plugin", "name", e.Info.Name, "kind", e.Info.Kind, "version", e.Info.Version)
	}

	docker, err := discovery.NewClient()
	if err != nil {
		return err
	}
	defer docker.Close()

	settings, err := pipeline.SettingsFrom(cfg)
	if err != nil {
		return err
	}
	if enc := settings.Encryption; enc.Name() != "none" {
		logger.Info("backups are encrypted", "to", enc.String(), "key_expires", enc.Expiry())
	}
	a.runner = pipeline.New(a.plugins, settings, logger.Named("backup"))
	a.metrics = metrics.New(metrics.Gauges{
		Queued:   func() float64 { return float64(a.sched.Queued()) },
		Running:  func() float64 { return float64(a.sched.Running()) },
		Jobs:     func() float64 { j, _ := a.sched.Counts(); return float64(j) },
		Rejected: func() float64 { _, r := a.sched.Counts(); return float64(r) },
		Freshness: func() []metrics.Fresh {
			var out []metrics.Fresh
			for _, f := range a.freshness() {
				out = append(out, metrics.Fresh{Container: f.ContainerName, Stale: f.Stale, DueBy: f.DueBy})
			}
			return out
		},
	})
	a.notifier = a.newNotifier(cfg)
	a.sched = scheduler.New(scheduler.Options{
		OnEvent: a.onEvent,
		Runner:  a.runner,
		PluginCheck: func(dbType string) error {
			_, err := a.plugins.Lookup(sdk.KindDumper, dbType)
			return err
		},
		Limit:  cfg.ConcurrentBackupLimit,
		Logger: logger.Named("scheduler"),
	})
	if err := a.startSweep(ctx, cfg.Retention.Schedule); err != nil {
		return err
	}
	defer a.stopSweep()

	ready := readiness.New(15*time.Second, 10*time.Second, a.checks(docker)...)
	go ready.Run(ctx)

	var running atomic.Bool
	running.Store(true)
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("HTTP_ADDR %s: %w", cfg.HTTPAddr, err)
	}
	srv := api.NewHTTPServer(cfg.HTTPAddr, api.New(api.Deps{
		Jobs:      a.sched,
		Readiness: ready,
		Metadata:  a.runner,
		Metrics:   a.metrics.Handler(),
		Freshness: a.freshness,
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

	a.watcher = discovery.New(docker, cfg.ReconcileInterval, logger.Named("discovery"))
	snaps := make(chan []discovery.Container)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		_ = a.watcher.Run(ctx, snaps)
	}()
loop:
	for {
		select {
		case snap := <-snaps:
			a.sched.Reconcile(snap)
		case <-reloads:
			if reload != nil {
				a.reload(ctx, reload)
			}
		case <-ctx.Done():
			break loop
		}
	}
	<-watchDone
	running.Store(false)

	grace := a.cfg.Load().ShutdownGrace
	logger.Info("shutting down", "grace", grace)
	graceCtx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	a.sched.Stop(graceCtx)
	// Only after the scheduler: runs ending during the grace period still
	// notify. Queued notifications get a bounded time to go out.
	notifyCtx, cancelNotify := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancelNotify()
	a.notifyMu.Lock()
	a.notifier.Close(notifyCtx)
	a.notifyMu.Unlock()
	httpCtx, cancelHTTP := context.WithTimeout(context.Background(), time.Second)
	defer cancelHTTP()
	_ = srv.Shutdown(httpCtx)
	logger.Info("stopped")
	return nil
}

func (a *agent) newNotifier(cfg config.Config) *webhook.Notifier {
	return webhook.New(webhook.Options{
		Secret:     cfg.Webhook.Secret,
		Timeout:    cfg.Webhook.Timeout,
		MaxRetries: cfg.Webhook.MaxRetries,
		Logger:     a.logger.Named("webhook"),
		OnResult: func(r webhook.Result) {
			a.metrics.Webhook(r.Receiver, string(r.Outcome), r.BreakerOpen)
		},
	})
}

// onEvent records a run's outcome and notifies its receiver.
func (a *agent) onEvent(e scheduler.Event) {
	record(a.metrics, e)
	url := webhookURL(e, a.cfg.Load().Webhook.URL)
	if url == "" {
		return
	}
	a.notifyMu.RLock()
	defer a.notifyMu.RUnlock()
	a.notifier.Send(url, payload(e, time.Now()))
}

// startSweep schedules the retention sweep, which covers every scheduled
// container, also those whose backups keep failing (their prune never runs
// after a success).
func (a *agent) startSweep(ctx context.Context, spec string) error {
	sched, err := labels.ParseCron(spec)
	if err != nil {
		return fmt.Errorf("GC_SCHEDULE: %w", err)
	}
	c := cron.New(cron.WithLocation(time.Local))
	c.Schedule(sched, cron.FuncJob(func() {
		jobs, _ := a.sched.Jobs()
		pjobs := make([]pipeline.Job, len(jobs))
		for i, j := range jobs {
			pjobs[i] = j.Job
		}
		reports := a.runner.Prune(ctx, pjobs)
		for name, rep := range reports {
			if !rep.DryRun {
				a.metrics.RetentionDeleted(name, len(rep.Deleted))
			}
		}
		a.logger.Info("retention sweep done", "containers", len(reports))
	}))
	c.Start()
	a.sweepMu.Lock()
	old := a.sweep
	a.sweep = c
	a.sweepMu.Unlock()
	if old != nil {
		old.Stop()
	}
	return nil
}

func (a *agent) stopSweep() {
	a.sweepMu.Lock()
	defer a.sweepMu.Unlock()
	if a.sweep != nil {
		a.sweep.Stop()
	}
}

// reload re-reads the configuration and swaps it in. An invalid new
// configuration is rejected whole and the running one stays. Running
// backups keep the settings they started with; nothing is restarted, so
// no backup is lost or run twice.
func (a *agent) reload(ctx context.Context, reload Reloader) {
	next, err := reload()
	if err != nil {
		a.logger.Error("configuration reload rejected; keeping the running configuration", "error", err)
		return
	}
	prev := a.cfg.Load()
	if next.HTTPAddr != prev.HTTPAddr || next.PluginDir != prev.PluginDir || next.LogJSON != prev.LogJSON {
		a.logger.Warn("HTTP_ADDR, PLUGIN_DIR and LOG_FORMAT take effect only after a restart")
		next.HTTPAddr, next.PluginDir, next.LogJSON = prev.HTTPAddr, prev.PluginDir, prev.LogJSON
	}
	settings, err := pipeline.SettingsFrom(next)
	if err != nil {
		a.logger.Error("configuration reload rejected; keeping the running configuration", "error", err)
		return
	}
	if next.Retention.Schedule != prev.Retention.Schedule {
		if err := a.startSweep(ctx, next.Retention.Schedule); err != nil {
			a.logger.Error("configuration reload rejected; keeping the running configuration", "error", err)
			return
		}
	}
	a.logger.SetLevel(next.LogLevel)
	a.runner.SetSettings(settings)
	a.watcher.SetInterval(next.ReconcileInterval)
	a.sched.SetLimit(next.ConcurrentBackupLimit)
	if err := a.plugins.Rescan(ctx); err != nil {
		a.logger.Error("rescanning plugins", "error", err)
	}

	fresh := a.newNotifier(next)
	a.notifyMu.Lock()
	old := a.notifier
	a.notifier = fresh
	a.cfg.Store(&next)
	a.notifyMu.Unlock()
	go func() {
		// The old notifier's queue still goes out, within bounds.
		closeCtx, cancel := context.WithTimeout(context.Background(), next.Webhook.Timeout*time.Duration(next.Webhook.MaxRetries+1))
		defer cancel()
		old.Close(closeCtx)
	}()
	a.logger.Info("configuration reloaded")
}

// freshness judges every scheduled container now.
func (a *agent) freshness() []freshness.Status {
	jobs, _ := a.sched.Jobs()
	return freshness.Evaluate(jobs, a.cfg.Load().BackupTimeout, time.Now())
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
// plugins load, and each configured storage is usable. They read the
// current configuration, so a reload applies to them too.
func (a *agent) checks(docker discovery.Pinger) []readiness.Check {
	return []readiness.Check{
		{Name: "docker", Fn: func(ctx context.Context) error {
			if _, err := docker.Ping(ctx); err != nil {
				return fmt.Errorf("docker engine unreachable: %w", err)
			}
			return nil
		}},
		{Name: "plugins", Fn: func(context.Context) error {
			_, broken := a.plugins.List()
			for file, why := range broken {
				return fmt.Errorf("%s rejected: %s", file, why)
			}
			if _, err := a.plugins.Lookup(sdk.KindSink, "local"); err != nil {
				return err
			}
			if a.cfg.Load().S3.Configured() {
				if _, err := a.plugins.Lookup(sdk.KindSink, "s3"); err != nil {
					return err
				}
			}
			return nil
		}},
		{Name: "local storage", Fn: func(ctx context.Context) error {
			_, err := a.runner.CheckStorage(ctx, labels.DestLocal)
			return err
		}},
		{Name: "s3 bucket", Fn: func(ctx context.Context) error {
			if !a.cfg.Load().S3.Configured() {
				return nil // not in use
			}
			_, err := a.runner.CheckStorage(ctx, labels.DestRemote)
			return err
		}},
	}
}
