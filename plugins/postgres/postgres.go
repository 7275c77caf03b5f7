// Package postgres is Label Backup's PostgreSQL dumper plugin. It drives
// libpq's own tools: psql to check a connection, pg_dump for custom-format
// archives and pg_restore to load them back.
//
// Connection strings are postgres:// or postgresql:// URIs. The URI goes to
// the tools as --dbname with its passwords removed, so every libpq query
// option (sslmode, sslrootcert, options, target_session_attrs, ...) applies
// unchanged; the password travels in PGPASSWORD, never in argv, logs or
// errors.
//
// In exec mode (Target.Options["mode"] = "exec") the same tools run inside
// the database's container through the host (sdk.Exec), found in the
// container's PATH. Without a connection string the connection is derived
// from the container's environment as the official image defines it:
// POSTGRES_USER (default postgres), POSTGRES_PASSWORD, POSTGRES_DB (default
// the user), each also as a _FILE variant read inside the container, over
// the container's Unix socket in /var/run/postgresql (port PGPORT when
// set). A container with neither POSTGRES_PASSWORD nor
// POSTGRES_PASSWORD_FILE (nor POSTGRES_HOST_AUTH_METHOD=trust) is an error
// naming them.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/labelbackup/label-backup/sdk"
	"github.com/labelbackup/label-backup/sdk/toolexec"
)

const (
	// Name is the plugin's name.
	Name = "postgres"
	// Version is the plugin's version.
	Version = "0.1.0"
	// FormatCustom is the format of the dumps: pg_dump --format=custom.
	FormatCustom = "pg_dump-custom"
	// Extension is the raw dump's file extension.
	Extension = ".dump"
	// OptionBinDir is the setting naming the directory of the tools.
	OptionBinDir = "bin_dir"
)

// tools the plugin runs; bin_dir must hold all of them.
var tools = []string{"psql", "pg_dump", "pg_restore"}

// Plugin is the PostgreSQL dumper. Its zero value is ready to use (tools are
// looked up in PATH). It is safe for concurrent use.
type Plugin struct {
	mu     sync.RWMutex
	binDir string
}

var (
	_ sdk.Dumper     = (*Plugin)(nil)
	_ sdk.Restorer   = (*Plugin)(nil)
	_ sdk.Configurer = (*Plugin)(nil)
)

// New returns a PostgreSQL dumper that finds its tools in PATH until
// configured otherwise.
func New() *Plugin { return &Plugin{} }

// Info describes the plugin.
func (p *Plugin) Info() sdk.Info {
	return sdk.Info{
		Name:             Name,
		Version:          Version,
		Kind:             sdk.KindDumper,
		Capabilities:     []string{sdk.CapRestore},
		DefaultExtension: Extension,
		Options: []sdk.Option{{
			Name:        OptionBinDir,
			Description: "directory holding psql, pg_dump and pg_restore (default: looked up in PATH)",
		}},
	}
}

// Configure takes the bin_dir setting. Unknown settings are rejected.
func (p *Plugin) Configure(_ context.Context, settings map[string]string) error {
	binDir := ""
	for k, v := range settings {
		switch k {
		case OptionBinDir:
			binDir = v
		default:
			return fmt.Errorf("postgres: unknown setting %q (known: %s): %w", k, OptionBinDir, sdk.ErrInvalidArgument)
		}
	}
	if binDir != "" {
		if !filepath.IsAbs(binDir) {
			return fmt.Errorf("postgres: %s %q is not an absolute path: %w", OptionBinDir, binDir, sdk.ErrInvalidArgument)
		}
		binDir = filepath.Clean(binDir)
		for _, tool := range tools {
			path := filepath.Join(binDir, tool)
			fi, err := os.Stat(path)
			if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
				return fmt.Errorf("postgres: %s %q has no executable %s: %w", OptionBinDir, binDir, tool, sdk.ErrInvalidArgument)
			}
		}
	}
	p.mu.Lock()
	p.binDir = binDir
	p.mu.Unlock()
	return nil
}

// tool is the path of a tool: in bin_dir, or a bare name for a PATH lookup.
func (p *Plugin) tool(name string) string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.binDir == "" {
		return name
	}
	return filepath.Join(p.binDir, name)
}

// Validate connects with psql and asks for the server's version.
func (p *Plugin) Validate(ctx context.Context, t sdk.Target) (sdk.ValidateResult, error) {
	ci, ex, err := p.prepare(ctx, t)
	if err != nil {
		return sdk.ValidateResult{}, err
	}
	env, cleanup, err := ci.env()
	defer cleanup()
	if err != nil {
		return sdk.ValidateResult{}, err
	}
	out := &toolexec.CappedBuffer{Limit: 4 << 10}
	_, err = toolexec.RunWith(ctx, ex, toolexec.Command{
		Path:    p.toolFor(ex, "psql"),
		Args:    ci.psqlArgs(),
		Env:     env,
		Stdout:  out,
		Secrets: ci.secrets,
	})
	if err != nil {
		return sdk.ValidateResult{}, fmt.Errorf("postgres: validating %s: %w", ci.where(), classify(err))
	}
	version := strings.TrimSpace(out.String())
	if version == "" {
		return sdk.ValidateResult{}, fmt.Errorf("postgres: validating %s: the server reported no version", ci.where())
	}
	sdk.Logger(ctx).Debug("connection validated", "host", ci.hostList(), "database", ci.database, "user", ci.user, "server_version", version)
	return sdk.ValidateResult{ServerVersion: version}, nil
}

// Dump streams an uncompressed custom-format archive into w.
func (p *Plugin) Dump(ctx context.Context, t sdk.Target, w io.Writer) (sdk.DumpResult, error) {
	ci, ex, err := p.prepare(ctx, t)
	if err != nil {
		return sdk.DumpResult{}, err
	}
	env, cleanup, err := ci.env()
	defer cleanup()
	if err != nil {
		return sdk.DumpResult{}, err
	}
	log := sdk.Logger(ctx)
	log.Debug("dump starting", "host", ci.hostList(), "database", ci.database, "user", ci.user)
	start := time.Now()
	res, err := toolexec.RunWith(ctx, ex, toolexec.Command{
		Path:    p.toolFor(ex, "pg_dump"),
		Args:    ci.dumpArgs(),
		Env:     env,
		Stdout:  w,
		Secrets: ci.secrets,
	})
	if err != nil {
		err = fmt.Errorf("postgres: dumping %s: %w", ci.where(), classify(err))
		log.Debug("dump failed", "host", ci.hostList(), "database", ci.database, "bytes", res.StdoutBytes, "error", err.Error())
		return sdk.DumpResult{}, err
	}
	log.Info("dump finished", "host", ci.hostList(), "database", ci.database,
		"bytes", res.StdoutBytes, "duration", time.Since(start).Round(time.Millisecond).String())
	return sdk.DumpResult{
		Format:    FormatCustom,
		Extension: Extension,
		Bytes:     res.StdoutBytes,
		Warnings:  warnings(res.Stderr),
	}, nil
}

// Restore loads a custom-format archive read from r with pg_restore.
// Target.Options: clean=true drops objects before recreating them
// (--clean --if-exists); no_owner=true skips ownership (--no-owner).
func (p *Plugin) Restore(ctx context.Context, t sdk.Target, format string, r io.Reader) (sdk.RestoreResult, error) {
	if format != "" && format != FormatCustom {
		return sdk.RestoreResult{}, fmt.Errorf("postgres: cannot restore format %q (only %q): %w", format, FormatCustom, sdk.ErrInvalidArgument)
	}
	ro, err := parseRestoreOptions(t.Options)
	if err != nil {
		return sdk.RestoreResult{}, err
	}
	ci, ex, err := p.prepare(ctx, t)
	if err != nil {
		return sdk.RestoreResult{}, err
	}
	env, cleanup, err := ci.env()
	defer cleanup()
	if err != nil {
		return sdk.RestoreResult{}, err
	}
	log := sdk.Logger(ctx)
	log.Debug("restore starting", "host", ci.hostList(), "database", ci.database, "user", ci.user)
	start := time.Now()
	in := &trackingReader{r: r}
	res, err := toolexec.RunWith(ctx, ex, toolexec.Command{
		Path:             p.toolFor(ex, "pg_restore"),
		Args:             ci.restoreArgs(ro),
		Env:              env,
		Stdin:            in,
		AllowEmptyOutput: true,
		Secrets:          ci.secrets,
	})
	if err != nil {
		if in.err != nil {
			// A broken upload is the cause; pg_restore's complaint about a
			// truncated archive is only its consequence.
			if errors.Is(err, in.err) {
				return sdk.RestoreResult{}, fmt.Errorf("postgres: restoring %s: reading the dump: %w", ci.where(), in.err)
			}
			return sdk.RestoreResult{}, fmt.Errorf("postgres: restoring %s: reading the dump: %w (then %w)", ci.where(), in.err, err)
		}
		return sdk.RestoreResult{}, fmt.Errorf("postgres: restoring %s: %w", ci.where(), classify(err))
	}
	// pg_restore may stop reading at the archive's end; the rest of the
	// stream (and its integrity check) must still be read.
	if _, err := io.Copy(io.Discard, in); err != nil {
		return sdk.RestoreResult{}, fmt.Errorf("postgres: restoring %s: reading the dump: %w", ci.where(), err)
	}
	log.Info("restore finished", "host", ci.hostList(), "database", ci.database,
		"bytes", in.n, "duration", time.Since(start).Round(time.Millisecond).String())
	return sdk.RestoreResult{Warnings: warnings(res.Stderr)}, nil
}

// warnings turns a successful tool's stderr into warnings, one per line.
func warnings(stderr string) []string {
	var out []string
	for _, l := range strings.Split(stderr, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// trackingReader remembers the first error other than io.EOF, so a broken
// upload can be told from a failing tool.
type trackingReader struct {
	r   io.Reader
	n   int64
	err error
}

func (t *trackingReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.n += int64(n)
	if err != nil && !errors.Is(err, io.EOF) && t.err == nil {
		t.err = err
	}
	return n, err
}
