package local

import (
	"context"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/labelbackup/label-backup/sdk"
)

// staleTempAge is how old a temporary file must be before the sweep treats
// it as a crashed upload's leftover. An hour is far longer than any gap
// between two writes of a live upload, which keep its mtime fresh.
const staleTempAge = time.Hour

// removeStaleTemps deletes temporary files older than staleTempAge under the
// base. It is best effort: failures are logged, never returned, since a
// leftover file wastes space but breaks nothing.
func (c *config) removeStaleTemps(ctx context.Context) {
	log := sdk.Logger(ctx)
	root, err := c.openRoot()
	if err != nil {
		log.Warn("skipping stale temporary file sweep", "error", err)
		return
	}
	defer root.Close()
	cutoff := time.Now().Add(-staleTempAge)
	removed := 0
	// WalkDir does not follow symlinks, and the root keeps it inside the
	// base even if one were swapped in.
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			log.Warn("stale temporary file sweep cannot read a directory", "dir", p, "error", bareError(err))
			return nil // WalkDir skips the unreadable directory
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if !d.Type().IsRegular() || !isTempName(d.Name()) {
			return nil
		}
		fi, err := d.Info()
		if err != nil || !fi.ModTime().Before(cutoff) {
			return nil
		}
		if err := root.Remove(filepath.FromSlash(p)); err != nil {
			log.Warn("cannot remove stale temporary file", "file", p, "error", bareError(err))
			return nil
		}
		removed++
		return nil
	})
	if err != nil {
		log.Warn("stale temporary file sweep stopped", "error", err)
	}
	if removed > 0 {
		log.Info("removed stale temporary files left by interrupted uploads", "count", removed)
	}
}
