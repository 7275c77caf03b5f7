// Package local is the local filesystem sink: it stores backups as files
// under one base directory (the host's LOCAL_BACKUP_PATH).
//
// Keys map to paths below the base. Everything a caller controls is
// confined there: keys are validated lexically, every directory on the way
// to an object must be a real directory (symlinks are refused, even ones
// that point inside the base), and all file access goes through an
// [os.Root] so a symlink swapped in behind our back still cannot escape.
//
// Uploads are written to a hidden temporary file next to their final name
// and renamed into place only after the SDK's reader has verified the
// upload's trailer, so an object is either complete or absent.
package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/labelbackup/label-backup/sdk"
)

// Setting names accepted by Configure.
const (
	settingPath         = "path"
	settingMinFreeBytes = "min_free_bytes"
)

// defaultMinFreeBytes keeps a little headroom so a backup never fills the
// disk that other services (often the database itself) share.
const defaultMinFreeBytes = 64 << 20

// Permissions for everything the sink creates: backups hold whole databases,
// so only the agent's user may read them.
const (
	filePerm = 0o600
	dirPerm  = 0o700
)

// Sink is the local filesystem sink. The zero value is not usable; call
// [New], then Configure.
type Sink struct {
	cfg atomic.Pointer[config]

	// dirs serialises creating parent directories (and the temporary file
	// in them) against pruning empty ones, so a Delete never removes a
	// directory that a concurrent Put has just made for its upload.
	dirs sync.Mutex
}

// config is what Configure settled on; it is replaced whole, never mutated.
type config struct {
	// base is the absolute base directory with symlinks resolved.
	base    string
	minFree uint64
}

var (
	_ sdk.Sink       = (*Sink)(nil)
	_ sdk.Configurer = (*Sink)(nil)
)

// New returns an unconfigured sink.
func New() *Sink { return &Sink{} }

// Info describes the plugin.
func (s *Sink) Info() sdk.Info {
	return sdk.Info{
		Name:         "local",
		Version:      "0.1.0",
		Kind:         sdk.KindSink,
		Capabilities: []string{sdk.CapGet, sdk.CapList, sdk.CapStat, sdk.CapDelete},
		Options: []sdk.Option{
			{
				Name:        settingPath,
				Description: "absolute path of the base directory backups are stored under; created (mode 0700) if missing",
				Required:    true,
			},
			{
				Name:        settingMinFreeBytes,
				Description: "refuse uploads and report not ready when the filesystem has fewer free bytes than this (default 67108864, 0 disables)",
			},
		},
	}
}

// Configure validates settings, creates the base directory if needed and
// removes temporary files that a crashed upload left behind.
func (s *Sink) Configure(ctx context.Context, settings map[string]string) error {
	if err := checkSettingNames(settings); err != nil {
		return err
	}
	minFree := uint64(defaultMinFreeBytes)
	if v, ok := settings[settingMinFreeBytes]; ok {
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return fmt.Errorf("%s %q is not a non-negative whole number of bytes: %w", settingMinFreeBytes, v, sdk.ErrInvalidArgument)
		}
		minFree = n
	}
	base, err := prepareBase(settings[settingPath])
	if err != nil {
		return err
	}
	cfg := &config{base: base, minFree: minFree}
	s.cfg.Store(cfg)
	cfg.removeStaleTemps(ctx)
	return nil
}

// checkSettingNames rejects unknown settings: a misspelt min_free_bytes
// silently falling back to the default would hide a misconfiguration.
func checkSettingNames(settings map[string]string) error {
	var unknown []string
	for k := range settings {
		if k != settingPath && k != settingMinFreeBytes {
			unknown = append(unknown, strconv.Quote(k))
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	return fmt.Errorf("unknown setting %s (accepted: %s, %s): %w",
		strings.Join(unknown, ", "), settingPath, settingMinFreeBytes, sdk.ErrInvalidArgument)
}

// prepareBase checks the configured base path, creates it when missing and
// returns it with symlinks resolved. Resolving once, here, means a symlink
// the operator chose (say /backups -> /mnt/disk) works, while nothing
// below the base is ever followed. The path is the operator's own setting,
// so errors may name it.
func prepareBase(p string) (string, error) {
	if p == "" {
		return "", fmt.Errorf("%s is required: %w", settingPath, sdk.ErrInvalidArgument)
	}
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("%s %q must be absolute: %w", settingPath, p, sdk.ErrInvalidArgument)
	}
	p = filepath.Clean(p)
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(p, dirPerm); err != nil {
			return "", pathError("create base directory "+strconv.Quote(p), err)
		}
		// MkdirAll's mode is filtered by the umask; make it exact.
		if err := os.Chmod(p, dirPerm); err != nil {
			return "", pathError("chmod base directory "+strconv.Quote(p), err)
		}
	} else if err != nil {
		return "", pathError("stat base directory "+strconv.Quote(p), err)
	}
	resolved, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", pathError("resolve base directory "+strconv.Quote(p), err)
	}
	fi, err := os.Stat(resolved)
	if err != nil {
		return "", pathError("stat base directory "+strconv.Quote(p), err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("base directory %q is not a directory: %w", p, sdk.ErrInvalidArgument)
	}
	return resolved, nil
}

// config returns the current configuration, or an error before Configure.
func (s *Sink) config() (*config, error) {
	if c := s.cfg.Load(); c != nil {
		return c, nil
	}
	return nil, fmt.Errorf("local sink is not configured: %w", sdk.ErrInvalidArgument)
}

// openRoot opens the base directory for confined access. It is opened per
// call rather than once so that a base that is remounted or recreated while
// the plugin runs is picked up instead of a stale directory handle.
func (c *config) openRoot() (*os.Root, error) {
	r, err := os.OpenRoot(c.base)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("base directory is missing: %w", sdk.ErrUnavailable)
	}
	if err != nil {
		return nil, pathError("open base directory", err)
	}
	return r, nil
}

// url is where key lives on disk, reported as the object's URL.
func (c *config) url(key string) string {
	return filepath.Join(c.base, filepath.FromSlash(key))
}
