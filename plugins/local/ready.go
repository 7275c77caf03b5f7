package local

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/labelbackup/label-backup/sdk"
)

// probeName is the name part of the readiness probe's temporary file; it
// has the temporary-file shape so a crash mid-probe is swept up like any
// other leftover.
const probeName = "label-backup-ready"

// CheckReady reports whether the base directory exists, is writable and
// has the configured headroom. The detail says how much space is free and
// nothing else: the path is the operator's business, not the caller's.
func (s *Sink) CheckReady(ctx context.Context) (string, error) {
	cfg, err := s.config()
	if err != nil {
		return "", err
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	root, err := cfg.openRoot()
	if err != nil {
		return "", err
	}
	defer root.Close()
	if err := probeWrite(root); err != nil {
		return "", err
	}
	free, err := freeSpace(cfg.base)
	if errors.Is(err, errors.ErrUnsupported) {
		return "writable (free space unknown)", nil
	}
	if err != nil {
		return "", pathError("measure free space", err)
	}
	if free < cfg.minFree {
		return "", fmt.Errorf("only %s free, need at least %s: %w", humanBytes(free), humanBytes(cfg.minFree), sdk.ErrNoSpace)
	}
	return humanBytes(free) + " free", nil
}

// probeWrite proves the base is a writable directory the only convincing
// way: by creating and removing a file in it.
func probeWrite(root *os.Root) error {
	name := tempName(probeName)
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
	if err != nil {
		return pathError("base directory is not writable", err)
	}
	cerr := f.Close()
	rerr := root.Remove(name)
	if err := errors.Join(cerr, rerr); err != nil {
		return pathError("base directory write probe", err)
	}
	return nil
}

// humanBytes formats n with binary units: "1.2 GiB".
func humanBytes(n uint64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n) / 1024
	i := 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, units[i])
}
