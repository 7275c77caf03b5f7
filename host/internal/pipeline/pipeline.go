// Package pipeline runs one backup: validate the connection, stream the
// dump from the dumper plugin through compression and a checksum into the
// sink plugin, commit, then write the metadata file. Any failure cancels
// both plugin streams: nothing partial ever becomes visible as a backup.
package pipeline

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/labelbackup/label-backup/host/internal/compress"
	"github.com/labelbackup/label-backup/host/internal/config"
	"github.com/labelbackup/label-backup/host/internal/encrypt"
	"github.com/labelbackup/label-backup/host/internal/execsvc"
	"github.com/labelbackup/label-backup/host/internal/labels"
	"github.com/labelbackup/label-backup/host/internal/metadata"
	"github.com/labelbackup/label-backup/host/internal/objname"
	"github.com/labelbackup/label-backup/host/internal/pluginmgr"
	"github.com/labelbackup/label-backup/host/internal/retention"
	"github.com/labelbackup/label-backup/sdk"
)

// AgentVersion is recorded in every metadata file.
const AgentVersion = "0.1.0"

// Job is one container's backup request.
type Job struct {
	ContainerID   string
	ContainerName string
	Spec          labels.Spec
}

// Result is what one run did.
type Result struct {
	RunID    string
	Started  time.Time
	Duration time.Duration
	// Object is the stored backup's key; empty on failure.
	Object string
	// URL is where the backup lives (a file path, or s3://bucket/key).
	URL      string
	Size     int64
	Metadata *metadata.Metadata // its Checksum is the stored bytes' sha256
	Err      error
	// Retention is what the prune after a successful backup did.
	Retention *retention.Report
}

// Settings are the agent-wide parts of a run.
type Settings struct {
	// Compression applies to jobs without backup.compression.
	Compression string
	// Timeout bounds one run.
	Timeout time.Duration
	// LocalPath is the local sink's base directory.
	LocalPath string
	// Remote are the s3 sink's settings; nil when no bucket is configured.
	Remote map[string]string
	// Retention is the global policy; labels override period and keep.
	Retention retention.Policy
	// OrphanPeriod, when positive, prunes backups of containers that no
	// longer exist on the sweep.
	OrphanPeriod time.Duration
	// Encryption applies to every backup, after compression.
	Encryption encrypt.Encryption
}

// SettingsFrom derives the pipeline's settings from the configuration.
func SettingsFrom(cfg config.Config) (Settings, error) {
	enc, err := cfg.Encryption.Load()
	if err != nil {
		return Settings{}, err
	}
	s := Settings{
		Encryption:  enc,
		Compression: cfg.Compression,
		Timeout:     cfg.BackupTimeout,
		LocalPath:   cfg.LocalBackupPath,
		Retention: retention.Policy{
			Period:   cfg.Retention.Period,
			KeepLast: cfg.Retention.KeepLast,
			DryRun:   cfg.Retention.DryRun,
		},
	}
	s.OrphanPeriod = cfg.Retention.OrphanPeriod
	if cfg.S3.Configured() {
		s.Remote = cfg.S3.SinkSettings()
	}
	return s, nil
}

// Runner runs backups through plugins.
type Runner struct {
	plugins *pluginmgr.Manager
	current atomic.Pointer[Settings]
	logger  hclog.Logger
}

// New returns a Runner.
func New(plugins *pluginmgr.Manager, s Settings, logger hclog.Logger) *Runner {
	r := &Runner{plugins: plugins, logger: logger}
	r.current.Store(&s)
	return r
}

// SetSettings replaces the settings (a configuration reload). Runs already
// going keep the settings they started with.
func (r *Runner) SetSettings(s Settings) { r.current.Store(&s) }

func (r *Runner) settings() Settings { return *r.current.Load() }

// SinkFor names the sink plugin and its settings for a destination.
func (r *Runner) SinkFor(dest string) (string, map[string]string, error) {
	return sinkFor(r.settings(), dest)
}

func sinkFor(s Settings, dest string) (string, map[string]string, error) {
	switch dest {
	case labels.DestLocal, "":
		return "local", map[string]string{"path": s.LocalPath}, nil
	case labels.DestRemote:
		if s.Remote == nil {
			return "", nil, fmt.Errorf("destination %q needs S3 storage, but BUCKET_NAME is not set", dest)
		}
		return "s3", s.Remote, nil
	}
	return "", nil, fmt.Errorf("unknown destination %q", dest)
}

// Run performs one backup of job. It never panics and always returns a
// Result whose Err says what failed, in words fit for logs and webhooks.
func (r *Runner) Run(ctx context.Context, job Job) Result {
	res := Result{RunID: objname.NewRunID(), Started: time.Now().UTC()}
	log := r.logger.With("container", job.ContainerName, "container_id", short(job.ContainerID), "run", res.RunID)
	settings := r.settings()
	ctx, cancel := context.WithTimeout(ctx, settings.Timeout)
	defer cancel()

	log.Info("backup started", "type", job.Spec.Type, "dest", job.Spec.Dest)
	err := r.run(ctx, job, settings, &res, log)
	res.Duration = time.Since(res.Started)
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("backup timed out after %v: %w", settings.Timeout, err)
	}
	res.Err = err
	if err != nil {
		log.Error("backup failed", "error", err, "duration", res.Duration.Round(time.Millisecond))
	} else {
		log.Info("backup succeeded", "object", res.Object, "bytes", res.Size, "duration", res.Duration.Round(time.Millisecond))
	}
	return res
}

func (r *Runner) run(ctx context.Context, job Job, settings Settings, res *Result, log hclog.Logger) error {
	spec := job.Spec
	sinkName, sinkSettings, err := sinkFor(settings, spec.Dest)
	if err != nil {
		return err
	}
	dumper, err := r.plugins.StartDumper(ctx, spec.Type)
	if err != nil {
		return err
	}
	defer dumper.Close()
	sink, err := r.plugins.StartSink(ctx, sinkName, sinkSettings)
	if err != nil {
		return err
	}
	defer sink.Close()

	target := sdk.Target{
		Connection: spec.Conn,
		Database:   spec.Database,
		Container:  sdk.ContainerRef{ID: job.ContainerID, Name: job.ContainerName},
	}
	// Exec mode, ${VAR} in backup.conn and zero-config credentials.
	ctx, err = execsvc.Prepare(ctx, spec, &target)
	if err != nil {
		return fmt.Errorf("preparing the target: %w", err)
	}
	database := spec.Database
	if database == "" {
		database = execsvc.DatabaseHint(spec.Type, target)
	}
	valid, err := dumper.Validate(ctx, target)
	if err != nil {
		return fmt.Errorf("connection check failed: %w", dumper.Explain(err))
	}

	algo := spec.Compression
	if algo == "" {
		algo = settings.Compression
	}
	enc := settings.Encryption
	key := objname.Name{
		Prefix:    spec.Prefix,
		Container: job.ContainerName,
		Type:      spec.Type,
		Database:  database,
		Time:      res.Started,
		RunID:     res.RunID,
		Ext:       dumper.Info.DefaultExtension + compress.Extension(algo) + enc.Extension(),
	}.Key()

	put, err := sink.OpenPut(ctx, sdk.PutRequest{Key: key, ContentType: enc.ContentType(compress.ContentType(algo))})
	if err != nil {
		return fmt.Errorf("opening %s storage: %w", sinkName, sink.Explain(err))
	}
	defer put.Abort() // a no-op once committed
	// dump -> compress -> encrypt -> sink (which hashes what it stores).
	ew, err := enc.NewWriter(put)
	if err != nil {
		return fmt.Errorf("encrypting: %w", sink.Explain(err))
	}
	zw, err := compress.NewWriter(algo, ew)
	if err != nil {
		return err
	}
	dump, err := dumper.Dump(ctx, target, zw)
	if cerr := zw.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("compressing: %w", sink.Explain(cerr))
	}
	if eerr := ew.Close(); err == nil && eerr != nil {
		err = fmt.Errorf("encrypting: %w", sink.Explain(eerr))
	}
	if err != nil {
		return fmt.Errorf("dump failed: %w", explainBoth(dumper.Process, sink.Process, err))
	}
	obj, err := put.Commit()
	if err != nil {
		return fmt.Errorf("storing the backup failed: %w", sink.Explain(err))
	}

	meta := metadata.Metadata{
		Timestamp:         res.Started,
		ContainerID:       job.ContainerID,
		ContainerName:     job.ContainerName,
		DatabaseType:      spec.Type,
		DatabaseName:      database,
		BackupSizeBytes:   obj.Size,
		Checksum:          hex.EncodeToString(obj.SHA256),
		ChecksumAlgorithm: "sha256",
		CompressionType:   algo,
		Version:           metadata.FormatVersion,
		Destination:       obj.URL,
		DurationSeconds:   time.Since(res.Started).Seconds(),
		Success:           true,
		Object:            key,
		RunID:             res.RunID,
		DestinationType:   DestinationType(spec.Dest),
		BackupPrefix:      spec.Prefix,
		CronSchedule:      spec.Cron,
		DumpFormat:        dump.Format,
		DumpSizeBytes:     dump.Bytes,
		Encryption:        enc.Name(),
		ServerVersion:     valid.ServerVersion,
		Dumper:            metadata.Plugin{Name: dumper.Info.Name, Version: dumper.Info.Version},
		Sink:              metadata.Plugin{Name: sink.Info.Name, Version: sink.Info.Version},
		AgentVersion:      AgentVersion,
	}
	body, err := meta.Marshal()
	if err != nil {
		return err
	}
	if _, err := sink.Put(ctx, sdk.PutRequest{Key: key + objname.MetadataSuffix, ContentType: "application/json"}, bytes.NewReader(body)); err != nil {
		// A backup without metadata cannot be verified or pruned safely:
		// take it back rather than leave it half-described.
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if derr := sink.Delete(cleanup, key); derr != nil {
			log.Warn("could not remove a backup whose metadata failed", "object", key, "error", derr)
		}
		return fmt.Errorf("writing metadata failed: %w", sink.Explain(err))
	}
	for _, w := range dump.Warnings {
		log.Warn("dump warning", "warning", w)
	}
	res.Object, res.URL, res.Size, res.Metadata = key, obj.URL, obj.Size, &meta

	// Prune right after a success: the new backup is the newest one kept.
	// A failing prune never fails the backup.
	rep, err := retention.Prune(ctx, sink, r.jobRetention(job), policy(settings, spec), time.Now(), log)
	if err != nil {
		log.Error("retention failed", "error", err)
	} else {
		res.Retention = &rep
	}
	return nil
}

// policy is the retention policy of a job: labels override the globals.
func policy(s Settings, spec labels.Spec) retention.Policy {
	p := s.Retention
	if spec.Retention > 0 {
		p.Period = spec.Retention
	}
	if spec.Keep > 0 {
		p.KeepLast = spec.Keep
	}
	return p
}

func (r *Runner) jobRetention(job Job) retention.Job {
	return retention.Job{Prefix: job.Spec.Prefix, ContainerName: job.ContainerName}
}

// Prune applies retention to each job's backups, starting each destination's
// sink once. It returns a report per container name.
func (r *Runner) Prune(ctx context.Context, jobs []Job) map[string]retention.Report {
	out := map[string]retention.Report{}
	byDest := map[string][]Job{}
	for _, j := range jobs {
		byDest[j.Spec.Dest] = append(byDest[j.Spec.Dest], j)
	}
	for dest, js := range byDest {
		name, settings, err := r.SinkFor(dest)
		if err != nil {
			r.logger.Error("retention sweep: destination unavailable", "dest", dest, "error", err)
			continue
		}
		sink, err := r.plugins.StartSink(ctx, name, settings)
		if err != nil {
			r.logger.Error("retention sweep: sink failed to start", "sink", name, "error", err)
			continue
		}
		for _, j := range js {
			log := r.logger.With("container", j.ContainerName)
			rep, err := retention.Prune(ctx, sink, r.jobRetention(j), policy(r.settings(), j.Spec), time.Now(), log)
			if err != nil {
				log.Error("retention failed", "error", sink.Explain(err))
				continue
			}
			out[j.ContainerName] = rep
		}
		if period := r.settings().OrphanPeriod; period > 0 {
			r.pruneOrphans(ctx, sink, js, period, out)
		}
		sink.Close()
	}
	return out
}

// pruneOrphans applies the orphan period to containers that have backups
// under the current jobs' prefixes but no job. Reports are keyed
// "orphan:<container>".
func (r *Runner) pruneOrphans(ctx context.Context, sink *pluginmgr.Sink, jobs []Job, period time.Duration, out map[string]retention.Report) {
	active := map[string]map[string]bool{} // prefix → container names
	for _, j := range jobs {
		if active[j.Spec.Prefix] == nil {
			active[j.Spec.Prefix] = map[string]bool{}
		}
		active[j.Spec.Prefix][objname.DirName(j.ContainerName)] = true
	}
	policy := r.settings().Retention
	policy.Period = period
	for prefix, names := range active {
		orphans, err := retention.Orphans(ctx, sink, prefix, names)
		if err != nil {
			r.logger.Error("retention sweep: listing orphans failed", "prefix", prefix, "error", sink.Explain(err))
			continue
		}
		for _, c := range orphans {
			log := r.logger.With("container", c, "orphan", true)
			rep, err := retention.Prune(ctx, sink, retention.Job{Prefix: prefix, ContainerName: c}, policy, time.Now(), log)
			if err != nil {
				log.Error("retention failed", "error", sink.Explain(err))
				continue
			}
			out["orphan:"+c] = rep
		}
	}
}

// explainBoth attributes a streaming failure to whichever plugin died.
func explainBoth(a, b *pluginmgr.Process, err error) error {
	if e := a.Explain(err); e != err {
		return e
	}
	return b.Explain(err)
}

// DatabaseName is the database a job dumps: backup.database, else the path
// of the connection URI. Never anything from the URI's credentials.
func DatabaseName(s labels.Spec) string {
	if s.Database != "" {
		return s.Database
	}
	return labels.ConnDatabase(s.Conn)
}

// DestinationType is the documented name of a destination: "local" or "s3".
func DestinationType(dest string) string {
	if dest == labels.DestRemote {
		return "s3"
	}
	return "local"
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// ErrInvalidKey means a key is not the name of a backup this agent writes.
var ErrInvalidKey = errors.New("not a backup object name")

// ReadMetadata returns the metadata file of the backup called key (the
// backup's own key; a trailing ".metadata.json" is accepted too), looking
// in local storage and then in S3 when configured.
func (r *Runner) ReadMetadata(ctx context.Context, key string) ([]byte, error) {
	key = objname.TrimMetadata(key)
	if _, ok := objname.Parse(key); !ok || len(key) > 1024 {
		return nil, ErrInvalidKey
	}
	for _, dest := range []string{labels.DestLocal, labels.DestRemote} {
		raw, err := r.readMetadataFrom(ctx, dest, key)
		switch {
		case err == nil:
			return raw, nil
		case errors.Is(err, sdk.ErrNotFound), errors.Is(err, errNoSink):
			continue
		case errors.Is(err, sdk.ErrInvalidArgument):
			return nil, ErrInvalidKey
		default:
			return nil, fmt.Errorf("reading from %s storage: %w", dest, err)
		}
	}
	return nil, sdk.ErrNotFound
}

// CheckStorage starts the sink of a destination and asks whether it is
// usable; it returns the sink's detail (e.g. free space).
func (r *Runner) CheckStorage(ctx context.Context, dest string) (string, error) {
	sink, err := r.startSinkFor(ctx, dest)
	if err != nil {
		return "", err
	}
	defer sink.Close()
	detail, err := sink.CheckReady(ctx)
	return detail, sink.Explain(err)
}
