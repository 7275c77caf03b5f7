// Package retention prunes old backups of one job, and nothing else:
//
//   - it lists only that container's directory (<prefix>/<container>/), so
//     an empty prefix never means "the whole disk or bucket";
//   - it only considers objects whose names this agent writes (objname)
//     and that have a metadata file saying they are successful backups of
//     that container; anything else under the directory is left alone;
//   - it always keeps the newest KeepLast successful backups, however old,
//     so backups that keep failing never lead to an empty history;
//   - a backup and its metadata file go together: the backup first, then
//     its metadata (a metadata file whose backup is gone is pruned too).
package retention

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/labelbackup/label-backup/host/internal/metadata"
	"github.com/labelbackup/label-backup/host/internal/objname"
	"github.com/labelbackup/label-backup/sdk"
)

// Store is what retention needs from a sink.
type Store interface {
	List(ctx context.Context, req sdk.ListRequest) (sdk.ListPage, error)
	Get(ctx context.Context, key string, w io.Writer) error
	Delete(ctx context.Context, key string) error
}

// Policy says what to keep.
type Policy struct {
	// Period: backups older than this may go.
	Period time.Duration
	// KeepLast newest successful backups are kept whatever their age
	// (at least 1).
	KeepLast int
	// DryRun reports what would be deleted and deletes nothing.
	DryRun bool
}

// Job identifies whose backups to prune.
type Job struct {
	Prefix        string
	ContainerName string
}

// Report says what one pass did.
type Report struct {
	// Deleted are the backup keys removed (or, in a dry run, that would
	// have been).
	Deleted []string
	// Kept counts the job's backups left in place.
	Kept   int
	DryRun bool
	// Errors are deletions that failed; the pass goes on past them.
	Errors []string
}

// backup is one candidate: a parsed name plus what its metadata says.
type backup struct {
	key      string
	time     time.Time
	hasMeta  bool
	success  bool
	modified time.Time
}

// Prune applies p to job's backups in s as of now.
func Prune(ctx context.Context, s Store, job Job, p Policy, now time.Time, log hclog.Logger) (Report, error) {
	if p.Period <= 0 {
		return Report{}, errors.New("retention period must be positive")
	}
	keep := max(p.KeepLast, 1)
	dir := objname.Dir(job.Prefix, job.ContainerName)
	objects, err := listAll(ctx, s, dir)
	if err != nil {
		return Report{}, fmt.Errorf("listing %s: %w", dir, err)
	}

	present := make(map[string]bool, len(objects))
	for _, o := range objects {
		present[o.Key] = true
	}
	var backups []*backup
	var orphanMeta []string
	for _, o := range objects {
		if k, ok := strings.CutSuffix(o.Key, objname.MetadataSuffix); ok {
			if _, isBackup := objname.Parse(k); isBackup && !present[k] && now.Sub(o.Modified) > p.Period {
				orphanMeta = append(orphanMeta, o.Key)
			}
			continue
		}
		name, ok := objname.Parse(o.Key)
		if !ok || objname.Dir(name.Prefix, name.Container) != dir {
			continue // not ours: never touched
		}
		b := &backup{key: o.Key, time: name.Time, modified: o.Modified, hasMeta: present[o.Key+objname.MetadataSuffix]}
		if b.hasMeta {
			m, err := readMetadata(ctx, s, o.Key+objname.MetadataSuffix)
			if err != nil {
				log.Warn("retention: unreadable metadata; keeping the backup", "object", o.Key, "error", err)
				continue
			}
			if m.ContainerName != job.ContainerName && objname.Dir(job.Prefix, m.ContainerName) != dir {
				continue // a different container's backup that maps to the same directory
			}
			b.success = m.Success
		}
		backups = append(backups, b)
	}

	// Newest first: the first `keep` successful ones are untouchable.
	sort.Slice(backups, func(i, j int) bool { return backups[i].time.After(backups[j].time) })
	rep := Report{DryRun: p.DryRun}
	protected := 0
	for _, b := range backups {
		if b.success && protected < keep {
			protected++
			rep.Kept++
			continue
		}
		// Without metadata a file is either being written right now or
		// was left by a failure: only old ones go, judged by mtime.
		age := now.Sub(b.time)
		if !b.hasMeta {
			age = now.Sub(b.modified)
		}
		if age <= p.Period {
			rep.Kept++
			continue
		}
		rep.Deleted = append(rep.Deleted, b.key)
		if p.DryRun {
			log.Info("retention (dry run): would delete", "object", b.key, "age", age.Round(time.Minute))
			continue
		}
		if err := deletePair(ctx, s, b.key, b.hasMeta); err != nil {
			rep.Errors = append(rep.Errors, err.Error())
			log.Error("retention: delete failed", "object", b.key, "error", err)
			continue
		}
		log.Info("retention: deleted", "object", b.key, "age", age.Round(time.Minute))
	}
	for _, k := range orphanMeta {
		if p.DryRun {
			log.Info("retention (dry run): would delete orphaned metadata", "object", k)
			continue
		}
		if err := s.Delete(ctx, k); err != nil && !errors.Is(err, sdk.ErrNotFound) {
			rep.Errors = append(rep.Errors, err.Error())
		}
	}
	return rep, nil
}

// deletePair removes a backup, then its metadata.
func deletePair(ctx context.Context, s Store, key string, hasMeta bool) error {
	if err := s.Delete(ctx, key); err != nil && !errors.Is(err, sdk.ErrNotFound) {
		return fmt.Errorf("deleting %s: %w", key, err)
	}
	if hasMeta {
		if err := s.Delete(ctx, key+objname.MetadataSuffix); err != nil && !errors.Is(err, sdk.ErrNotFound) {
			return fmt.Errorf("deleting %s%s: %w", key, objname.MetadataSuffix, err)
		}
	}
	return nil
}

func listAll(ctx context.Context, s Store, prefix string) ([]sdk.ObjectInfo, error) {
	var out []sdk.ObjectInfo
	token := ""
	for {
		page, err := s.List(ctx, sdk.ListRequest{Prefix: prefix, PageToken: token, PageSize: 1000})
		if err != nil {
			return nil, err
		}
		out = append(out, page.Objects...)
		if page.NextPageToken == "" {
			return out, nil
		}
		token = page.NextPageToken
	}
}

func readMetadata(ctx context.Context, s Store, key string) (metadata.Metadata, error) {
	raw, err := metadata.Fetch(ctx, s, key)
	if err != nil {
		return metadata.Metadata{}, err
	}
	return metadata.Unmarshal(raw)
}
