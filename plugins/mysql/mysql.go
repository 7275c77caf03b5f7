// Package mysql is Label Backup's MySQL and MariaDB dumper plugin. It
// drives the database's own client tools: mariadb (or mysql) to check a
// connection and to restore, mariadb-dump (or mysqldump) to dump. MariaDB's
// names are preferred; the tools come from the bin_dir setting or PATH.
//
// # Connection strings
//
//	mysql://user:password@host:3306/database?ssl-mode=VERIFY_IDENTITY&ssl-ca=/certs/ca.pem
//
// The scheme may also be mariadb://. User, password, host and database are
// percent-decoded; the port defaults to 3306; IPv6 hosts go in brackets.
// The connection is always TCP, even to "localhost". Target.Database (the
// backup.database label) overrides the URI's database. Query parameters
// (names case-insensitive, "_" or "-"):
//
//   - ssl-mode (or sslmode): DISABLED, PREFERRED, REQUIRED, VERIFY_CA or
//     VERIFY_IDENTITY (libpq's disable, prefer, require, verify-ca and
//     verify-full are accepted too). Without it the tool's default applies.
//   - ssl-ca, ssl-cert, ssl-key: PEM files, as the tools' options of the
//     same names. ssl-ca alone does not turn certificate checks on.
//   - connect-timeout: seconds for the connection check (default 10).
//
// Any other parameter is rejected. MySQL's tools take ssl-mode as it is.
// MariaDB's have no ssl-mode, so it is mapped: DISABLED to skip-ssl,
// PREFERRED and REQUIRED to ssl without certificate checks, the VERIFY
// modes to ssl-verify-server-cert, which with MariaDB's tools also checks
// the host name (VERIFY_CA is as strict as VERIFY_IDENTITY). MariaDB's
// tools quietly fall back to plain text when the server has no TLS, so with
// REQUIRED the plugin first checks, through the client, that the server
// encrypts the session, and fails when it does not. The connection check,
// the dump and the restore always use the same settings.
//
// # Secrets
//
// Nothing of the connection string goes to argv but the database name. User,
// password, host, port and TLS settings reach the tools through an option
// file given as their first argument, --defaults-file=, written for one run
// into a private temporary directory (0700, the file 0600) that is removed
// afterwards; that directory is also the tools' HOME, so no ~/.my.cnf of
// the agent's user interferes. Passwords are scrubbed from the tools'
// messages and never logged.
//
// # Dumps
//
// A dump is plain SQL from mariadb-dump --single-transaction --routines
// --triggers --events --hex-blob --default-character-set=utf8mb4 (format
// "mysqldump-sql", extension ".sql"):
//
//   - When a database is named (URI path or Target.Database), only its
//     tables, views, routines, triggers and events are dumped, without
//     --databases: the dump has no CREATE DATABASE or USE statement, so it
//     restores into whichever database the restore selects, under any name:
//     mariadb otherdb < dump.sql. Create that database first (CREATE
//     DATABASE otherdb CHARACTER SET utf8mb4); the tables carry their own
//     character sets.
//   - When no database is named anywhere, every database is dumped
//     (--all-databases --flush-privileges), including the mysql system
//     database with its users and grants; such a dump recreates each
//     database under its own name.
//
// mariadb-dump ends a complete dump with a "-- Dump completed" line; a dump
// whose tool exited successfully without it is reported as truncated
// (sdk.ErrIntegrity).
//
// # Restores
//
// Restore pipes the SQL into the mariadb client (--binary-mode, stopping at
// the first error) with the target's connection settings. A single-database
// dump needs a database named in the target, which must exist; an
// all-databases dump restores every database under its own name (a database
// named in the target is then only the session's default, and a warning
// says so). A mysqldump file that does not end with its "-- Dump completed"
// line fails the restore as truncated (sdk.ErrIntegrity); the statements
// before the cut stay applied.
//
// # Exec mode
//
// With Target.Options["mode"] = "exec" the tools run inside the database's
// container through the host (sdk.Exec), MariaDB's names preferred, found
// in the container's PATH. There is no option file there: user, host,
// port and TLS settings go to the tools' argv inside the container, the
// password only to MYSQL_PWD in their environment. Without a connection
// string the connection is derived from the container's environment as the
// official images define it (MARIADB_* before MYSQL_*, each also as a _FILE
// variant read inside the container): root with the ROOT_PASSWORD, else
// the USER with its PASSWORD, else root without a password when
// ALLOW_EMPTY_(ROOT_)PASSWORD is set; the DATABASE, or every database. It
// connects over the server's default Unix socket. A container with none of
// these is an error naming them.
package mysql

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/labelbackup/label-backup/sdk"
	"github.com/labelbackup/label-backup/sdk/toolexec"
)

const (
	// Name is the plugin's name.
	Name = "mysql"
	// Version is the plugin's version.
	Version = "0.1.0"
	// Format is the format of the dumps: mysqldump's SQL text.
	Format = "mysqldump-sql"
	// Extension is the raw dump's file extension.
	Extension = ".sql"
	// OptionBinDir is the setting naming the directory of the tools.
	OptionBinDir = "bin_dir"
)

// Plugin is the MySQL/MariaDB dumper. Its zero value is ready to use (tools
// are looked up in PATH). It is safe for concurrent use.
type Plugin struct {
	mu      sync.RWMutex
	binDir  string
	flavors map[string]flavor // by tool path
}

var (
	_ sdk.Dumper     = (*Plugin)(nil)
	_ sdk.Restorer   = (*Plugin)(nil)
	_ sdk.Configurer = (*Plugin)(nil)
)

// New returns a MySQL/MariaDB dumper that finds its tools in PATH until
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
			Description: "directory holding mariadb-dump and mariadb, or mysqldump and mysql (default: looked up in PATH)",
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
			return fmt.Errorf("mysql: unknown setting %q (known: %s): %w", k, OptionBinDir, sdk.ErrInvalidArgument)
		}
	}
	if binDir != "" {
		if !filepath.IsAbs(binDir) {
			return fmt.Errorf("mysql: %s %q is not an absolute path: %w", OptionBinDir, binDir, sdk.ErrInvalidArgument)
		}
		binDir = filepath.Clean(binDir)
		for _, k := range []toolKind{dumpTool, clientTool} {
			found := false
			for _, name := range toolNames[k] {
				if isExecutable(filepath.Join(binDir, name)) {
					found = true
					break
				}
			}
			if !found {
				return fmt.Errorf("mysql: %s %q has no executable %s: %w", OptionBinDir, binDir,
					strings.Join(toolNames[k], " or "), sdk.ErrInvalidArgument)
			}
		}
	}
	p.mu.Lock()
	p.binDir = binDir
	p.mu.Unlock()
	return nil
}

func (p *Plugin) getBinDir() string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.binDir
}

// Validate connects with the client, selecting the database when one is
// named, and asks for the server's version.
func (p *Plugin) Validate(ctx context.Context, t sdk.Target) (sdk.ValidateResult, error) {
	ci, ex, err := p.prepare(ctx, t)
	if err != nil {
		return sdk.ValidateResult{}, err
	}
	version, err := p.check(ctx, ci, ex)
	if err != nil {
		return sdk.ValidateResult{}, fmt.Errorf("mysql: validating %s: %w", ci.where(), err)
	}
	sdk.Logger(ctx).Debug("connection validated", "host", ci.addr(), "database", ci.dbLabel(), "user", ci.user,
		"server_version", version, "ssl_mode", ci.tls.mode)
	return sdk.ValidateResult{ServerVersion: version}, nil
}

// check runs the connection check and returns the server's version. It
// fails when the TLS mode needs encryption and the session has none.
func (p *Plugin) check(ctx context.Context, ci *connInfo, ex sdk.Executor) (string, error) {
	client, fl, err := p.toolFor(ctx, ex, clientTool)
	if err != nil {
		return "", err
	}
	tc, cleanup, err := p.connect(ci, fl, clientTool, ex)
	defer cleanup()
	if err != nil {
		return "", err
	}
	out := &toolexec.CappedBuffer{Limit: 4 << 10}
	_, err = toolexec.RunWith(ctx, ex, toolexec.Command{
		Path:    client,
		Args:    tc.args(checkArgs("", ci.database)),
		Env:     tc.env,
		Stdout:  out,
		Secrets: ci.secrets,
	})
	if err != nil {
		return "", classify(err)
	}
	version, cipher, ok := parseCheckOutput(out.String())
	if !ok {
		return "", fmt.Errorf("the server's answer to the connection check is not understood: %q", truncate(out.String(), 200))
	}
	if ci.tls.needsEncryption() && cipher == "" {
		return "", fmt.Errorf("ssl-mode=%s, but the server did not encrypt the connection (is TLS configured on the server?)", ci.tls.mode)
	}
	return version, nil
}

// parseCheckOutput reads the answer to checkQuery: the version on the
// first line, then "Ssl_cipher<TAB><cipher or nothing>".
func parseCheckOutput(out string) (version, cipher string, ok bool) {
	lines := strings.Split(strings.TrimRight(out, "\r\n"), "\n")
	if len(lines) < 2 {
		return "", "", false
	}
	version = strings.TrimSpace(lines[0])
	name, value, found := strings.Cut(lines[1], "\t")
	if version == "" || !found || !strings.EqualFold(name, "Ssl_cipher") {
		return "", "", false
	}
	return version, strings.TrimSpace(value), true
}

// Dump streams mariadb-dump's SQL into w: the named database, or every
// database when none is named.
func (p *Plugin) Dump(ctx context.Context, t sdk.Target, w io.Writer) (sdk.DumpResult, error) {
	ci, ex, err := p.prepare(ctx, t)
	if err != nil {
		return sdk.DumpResult{}, err
	}
	dumper, fl, err := p.toolFor(ctx, ex, dumpTool)
	if err != nil {
		return sdk.DumpResult{}, fmt.Errorf("mysql: dumping %s: %w", ci.where(), err)
	}
	log := sdk.Logger(ctx)
	if ci.tls.mode == sslRequired && fl == flavorMariaDB {
		// MariaDB's dump tool would fall back to plain text.
		if _, err := p.check(ctx, ci, ex); err != nil {
			return sdk.DumpResult{}, fmt.Errorf("mysql: dumping %s: %w", ci.where(), err)
		}
	}
	tc, cleanup, err := p.connect(ci, fl, dumpTool, ex)
	defer cleanup()
	if err != nil {
		return sdk.DumpResult{}, fmt.Errorf("mysql: dumping %s: %w", ci.where(), err)
	}
	log.Debug("dump starting", "host", ci.addr(), "database", ci.dbLabel(), "user", ci.user, "tool", filepath.Base(dumper))
	start := time.Now()
	tw := &tailWriter{w: w}
	res, err := toolexec.RunWith(ctx, ex, toolexec.Command{
		Path:    dumper,
		Args:    tc.args(dumpArgs("", ci.database)),
		Env:     append(slices.Clone(tc.env), p.outputBuffering(ex)...),
		Stdout:  tw,
		Secrets: ci.secrets,
	})
	if err == nil && !dumpCompleted(tw.tail) {
		err = fmt.Errorf("%s exited successfully, but its output does not end with the %q line: the dump is truncated: %w",
			filepath.Base(dumper), dumpCompletedMarker, sdk.ErrIntegrity)
	}
	if err != nil {
		err = fmt.Errorf("mysql: dumping %s: %w", ci.where(), classify(err))
		log.Debug("dump failed", "host", ci.addr(), "database", ci.dbLabel(), "bytes", res.StdoutBytes, "error", err.Error())
		return sdk.DumpResult{}, err
	}
	log.Info("dump finished", "host", ci.addr(), "database", ci.dbLabel(),
		"bytes", res.StdoutBytes, "duration", time.Since(start).Round(time.Millisecond).String())
	return sdk.DumpResult{
		Format:    Format,
		Extension: Extension,
		Bytes:     res.StdoutBytes,
		Warnings:  warnings(res.Stderr),
	}, nil
}

// stdbufLib is coreutils' stdio buffering preload (what stdbuf(1) uses).
const stdbufLib = "/usr/libexec/coreutils/libstdbuf.so"

// outputBuffering is the environment that makes a local dump tool write
// its output in 1 MiB blocks instead of stdio's 4 KiB for a pipe:
// mariadb-dump writes through stdio, and each 4 KiB write wakes this
// plugin for a read, which on 2 cores cost it 1.5 CPU-seconds per 500 MB
// (146 writes instead of 36,634 for a 150 MB dump). Without coreutils'
// preload (or in exec mode, where the tool runs in another container)
// nothing changes.
func (p *Plugin) outputBuffering(ex sdk.Executor) []string {
	if ex != nil {
		return nil
	}
	if _, err := os.Stat(stdbufLib); err != nil {
		return nil
	}
	return []string{"LD_PRELOAD=" + stdbufLib, "_STDBUF_O=1048576"}
}

// headerPeek is how much of a dump is read to find mysqldump's header.
const headerPeek = 8 << 10

// Restore pipes a dump read from r into the client.
func (p *Plugin) Restore(ctx context.Context, t sdk.Target, format string, r io.Reader) (sdk.RestoreResult, error) {
	if format != "" && format != Format {
		return sdk.RestoreResult{}, fmt.Errorf("mysql: cannot restore format %q (only %q): %w", format, Format, sdk.ErrInvalidArgument)
	}
	ci, ex, err := p.prepare(ctx, t)
	if err != nil {
		return sdk.RestoreResult{}, err
	}
	in := &trackingReader{r: r}
	br := bufio.NewReaderSize(in, 64<<10)
	head, perr := br.Peek(headerPeek)
	if perr != nil && !errors.Is(perr, io.EOF) {
		return sdk.RestoreResult{}, fmt.Errorf("mysql: restoring %s: reading the dump: %w", ci.where(), perr)
	}
	if len(bytes.TrimSpace(head)) == 0 {
		return sdk.RestoreResult{}, fmt.Errorf("mysql: restoring %s: the dump is empty: %w", ci.where(), sdk.ErrInvalidArgument)
	}
	hdr := parseDumpHeader(head)
	var warns []string
	switch {
	case hdr.isDump && !hdr.allDatabases && ci.database == "":
		return sdk.RestoreResult{}, fmt.Errorf("mysql: restoring %s: the dump holds database %q only, without CREATE DATABASE: name the database to restore into (backup.database or the connection string): %w",
			ci.where(), hdr.database, sdk.ErrInvalidArgument)
	case hdr.isDump && hdr.allDatabases && ci.database != "":
		warns = append(warns, fmt.Sprintf("the dump holds all databases: they were restored under their own names; %q was only the session's default database", ci.database))
	}

	// The check gives clear errors (wrong password, missing database)
	// before any input is consumed, and enforces ssl-mode=REQUIRED.
	if _, err := p.check(ctx, ci, ex); err != nil {
		return sdk.RestoreResult{}, fmt.Errorf("mysql: restoring %s: %w", ci.where(), err)
	}
	client, fl, err := p.toolFor(ctx, ex, clientTool)
	if err != nil {
		return sdk.RestoreResult{}, fmt.Errorf("mysql: restoring %s: %w", ci.where(), err)
	}
	tc, cleanup, err := p.connect(ci, fl, clientTool, ex)
	defer cleanup()
	if err != nil {
		return sdk.RestoreResult{}, fmt.Errorf("mysql: restoring %s: %w", ci.where(), err)
	}
	log := sdk.Logger(ctx)
	log.Debug("restore starting", "host", ci.addr(), "database", ci.dbLabel(), "user", ci.user)
	start := time.Now()
	tr := &tailReader{r: br}
	res, err := toolexec.RunWith(ctx, ex, toolexec.Command{
		Path:             client,
		Args:             tc.args(restoreArgs("", ci.database, fl)),
		Env:              tc.env,
		Stdin:            tr,
		AllowEmptyOutput: true,
		Secrets:          ci.secrets,
	})
	if err != nil {
		if in.err != nil {
			// A broken upload is the cause; the client's complaint about
			// a cut statement is only its consequence.
			if errors.Is(err, in.err) {
				return sdk.RestoreResult{}, fmt.Errorf("mysql: restoring %s: reading the dump: %w", ci.where(), in.err)
			}
			return sdk.RestoreResult{}, fmt.Errorf("mysql: restoring %s: reading the dump: %w (then %w)", ci.where(), in.err, err)
		}
		return sdk.RestoreResult{}, fmt.Errorf("mysql: restoring %s: %w", ci.where(), classify(err))
	}
	// The client reads to the end; make sure of it, so the stream's
	// integrity check runs and the tail is complete.
	if _, err := io.Copy(io.Discard, tr); err != nil {
		return sdk.RestoreResult{}, fmt.Errorf("mysql: restoring %s: reading the dump: %w", ci.where(), err)
	}
	if hdr.isDump && !dumpCompleted(tr.tail) {
		return sdk.RestoreResult{}, fmt.Errorf("mysql: restoring %s: the dump does not end with its %q line: it is truncated (the statements before the cut were applied): %w",
			ci.where(), dumpCompletedMarker, sdk.ErrIntegrity)
	}
	log.Info("restore finished", "host", ci.addr(), "database", ci.dbLabel(),
		"bytes", in.n, "duration", time.Since(start).Round(time.Millisecond).String())
	return sdk.RestoreResult{Warnings: append(warns, warnings(res.Stderr)...)}, nil
}

// dumpHeader is what the first lines of a dump tell.
type dumpHeader struct {
	// isDump: the text starts like mariadb-dump's or mysqldump's output.
	isDump bool
	// allDatabases: the header names no database (--all-databases).
	allDatabases bool
	database     string
}

var (
	dumpBanner = regexp.MustCompile(`(?m)^-- (MariaDB|MySQL) dump `)
	dumpHost   = regexp.MustCompile(`(?m)^-- Host: .*\bDatabase: ?(.*?)\r?$`)
)

// parseDumpHeader reads mysqldump's header:
//
//	-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)
//	--
//	-- Host: 127.0.0.1    Database: shop
func parseDumpHeader(head []byte) dumpHeader {
	var h dumpHeader
	if !dumpBanner.Match(head) {
		return h
	}
	m := dumpHost.FindSubmatch(head)
	if m == nil {
		return h
	}
	h.isDump = true
	h.database = strings.TrimSpace(string(m[1]))
	h.allDatabases = h.database == ""
	return h
}

// dumpCompletedMarker starts the last line of a complete mysqldump dump.
const dumpCompletedMarker = "-- Dump completed"

// tailKeep is how many trailing bytes of a stream are kept.
const tailKeep = 512

// dumpCompleted reports whether the last non-empty line of tail starts with
// the marker.
func dumpCompleted(tail []byte) bool {
	s := strings.TrimRight(string(tail), "\r\n\t ")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return strings.HasPrefix(s, dumpCompletedMarker)
}

// keepTail appends p to tail, keeping its last tailKeep bytes.
func keepTail(tail, p []byte) []byte {
	if len(p) >= tailKeep {
		return append(tail[:0], p[len(p)-tailKeep:]...)
	}
	tail = append(tail, p...)
	if over := len(tail) - tailKeep; over > 0 {
		tail = append(tail[:0], tail[over:]...)
	}
	return tail
}

// tailWriter passes writes on and keeps the last bytes written.
type tailWriter struct {
	w    io.Writer
	tail []byte
}

func (t *tailWriter) Write(p []byte) (int, error) {
	n, err := t.w.Write(p)
	t.tail = keepTail(t.tail, p[:n])
	return n, err
}

// tailReader passes reads on and keeps the last bytes read.
type tailReader struct {
	r    io.Reader
	tail []byte
}

func (t *tailReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.tail = keepTail(t.tail, p[:n])
	return n, err
}

// trackingReader counts bytes and remembers the first error other than
// io.EOF, so a broken upload can be told from a failing tool.
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

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
