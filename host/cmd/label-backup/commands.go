package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/docker/docker/client"
	"github.com/hashicorp/go-hclog"

	"github.com/labelbackup/label-backup/host/internal/config"
	"github.com/labelbackup/label-backup/host/internal/discovery"
	"github.com/labelbackup/label-backup/host/internal/encrypt"
	"github.com/labelbackup/label-backup/host/internal/execsvc"
	"github.com/labelbackup/label-backup/host/internal/labels"
	"github.com/labelbackup/label-backup/host/internal/pipeline"
	"github.com/labelbackup/label-backup/host/internal/pluginmgr"
	"github.com/labelbackup/label-backup/sdk"
)

// newRunner builds the pipeline the way the agent does, for one-shot
// commands.
func newRunner(ctx context.Context, cfg config.Config, logger hclog.Logger) (*pipeline.Runner, error) {
	plugins, err := pluginmgr.New(ctx, cfg.PluginDir, logger.Named("plugins"))
	if err != nil {
		return nil, err
	}
	settings, err := pipeline.SettingsFrom(cfg)
	if err != nil {
		return nil, err
	}
	return pipeline.New(plugins, settings, logger.Named("backup")), nil
}

// progressOut is stderr when it is a terminal, else nothing: scripts get
// clean output.
func progressOut() io.Writer {
	if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		return os.Stderr
	}
	return nil
}

func printJSON(v any) {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// cmdRestore: label-backup restore [flags] <backup key>
func cmdRestore(ctx context.Context, cfg config.Config, logger hclog.Logger, args []string) int {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	dest := fs.String("dest", "", "where the backup is: local or s3 (default: look in both)")
	conn := fs.String("conn", "", "connection string of the restore target (default: backup.conn of --container)")
	container := fs.String("container", "", "container whose backup.conn is the target (default: the backed-up container)")
	database := fs.String("database", "", "database to restore into, overriding the connection's")
	gpgKey := fs.String("gpg-key", "", "OpenPGP private key file, for backups encrypted with GPG_PUBLIC_KEY_PATH (passphrase in $GPG_PASSPHRASE)")
	ageIdentity := fs.String("age-identity", "", "age identity file, for backups encrypted to AGE_RECIPIENTS")
	var opts optionFlags
	fs.Var(&opts, "option", "engine option key=value for the restore (repeatable), e.g. clean=true")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: label-backup restore [--dest local|s3] [--conn URI | --container NAME] [--database DB] [--option k=v] [--gpg-key FILE | --age-identity FILE] <backup key>")
		return 2
	}
	var decrypt func(io.Reader) (io.Reader, error)
	if *gpgKey != "" || *ageIdentity != "" {
		ids, err := encrypt.LoadIdentities(*gpgKey, []byte(os.Getenv("GPG_PASSPHRASE")), *ageIdentity)
		if err != nil {
			return fail(err)
		}
		decrypt = func(r io.Reader) (io.Reader, error) { return encrypt.NewReader(r, ids) }
	}
	runner, err := newRunner(ctx, cfg, logger)
	if err != nil {
		return fail(err)
	}
	loc, err := runner.Locate(ctx, fs.Arg(0), destFlag(*dest))
	if err != nil {
		return fail(err)
	}
	target := sdk.Target{Connection: *conn, Database: *database, Options: opts}
	if target.Connection == "" {
		name := *container
		if name == "" {
			name = loc.Metadata.ContainerName
		}
		spec, id, err := containerSpec(ctx, name)
		if err != nil {
			return fail(fmt.Errorf("finding the restore target (give --conn or --container): %w", err))
		}
		target.Connection = spec.Conn
		target.Container = sdk.ContainerRef{ID: id, Name: name}
		if target.Database == "" {
			target.Database = spec.Database
		}
		// The container's own settings: exec mode, ${VAR} references and
		// credentials from its environment apply to restores too.
		if ctx, err = execsvc.Prepare(ctx, spec, &target); err != nil {
			return fail(fmt.Errorf("preparing the restore target: %w", err))
		}
	}
	if err := runner.Restore(ctx, loc, pipeline.RestoreRequest{Target: target, Decrypt: decrypt, Progress: progressOut()}); err != nil {
		return fail(err)
	}
	fmt.Printf("restored %s\n", loc.Key)
	return 0
}

// cmdVerify: label-backup verify [--dest] [--json] [prefix]
func cmdVerify(ctx context.Context, cfg config.Config, logger hclog.Logger, args []string) int {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	dest := fs.String("dest", "local", "local or s3")
	asJSON := fs.Bool("json", false, "JSON output")
	if err := fs.Parse(args); err != nil || fs.NArg() > 1 {
		fmt.Fprintln(os.Stderr, "usage: label-backup verify [--dest local|s3] [--json] [prefix]")
		return 2
	}
	runner, err := newRunner(ctx, cfg, logger)
	if err != nil {
		return fail(err)
	}
	backups, err := runner.List(ctx, destFlag(*dest), fs.Arg(0))
	if err != nil {
		return fail(err)
	}
	type row struct {
		Object   string `json:"object"`
		OK       bool   `json:"ok"`
		Expected string `json:"expected_sha256"`
		Actual   string `json:"actual_sha256"`
		Error    string `json:"error,omitempty"`
	}
	var rows []row
	bad := 0
	for _, b := range backups {
		v, err := runner.Verify(ctx, b, progressOut())
		r := row{Object: b.Key, OK: err == nil && v.OK(), Expected: b.Metadata.Checksum, Actual: v.Actual}
		if err != nil {
			r.Error = err.Error()
		}
		if !r.OK {
			bad++
		}
		rows = append(rows, r)
		if !*asJSON {
			status := "ok     "
			if !r.OK {
				status = "CORRUPT"
			}
			fmt.Printf("%s %s %s\n", status, b.Key, r.Error)
		}
	}
	if *asJSON {
		printJSON(rows)
	}
	if bad > 0 {
		fmt.Fprintf(os.Stderr, "%d of %d backups failed verification\n", bad, len(rows))
		return 1
	}
	return 0
}

// cmdList: label-backup list [--dest] [--json] [prefix]
func cmdList(ctx context.Context, cfg config.Config, logger hclog.Logger, args []string) int {
	fs := flag.NewFlagSet("list", flag.ContinueOnError)
	dest := fs.String("dest", "local", "local or s3")
	asJSON := fs.Bool("json", false, "JSON output")
	if err := fs.Parse(args); err != nil || fs.NArg() > 1 {
		fmt.Fprintln(os.Stderr, "usage: label-backup list [--dest local|s3] [--json] [prefix]")
		return 2
	}
	runner, err := newRunner(ctx, cfg, logger)
	if err != nil {
		return fail(err)
	}
	backups, err := runner.List(ctx, destFlag(*dest), fs.Arg(0))
	if err != nil {
		return fail(err)
	}
	if *asJSON {
		out := make([]any, len(backups))
		for i, b := range backups {
			out[i] = b.Metadata
		}
		printJSON(out)
		return 0
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "OBJECT\tCONTAINER\tTYPE\tSIZE\tTIME")
	for _, b := range backups {
		m := b.Metadata
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", b.Key, m.ContainerName, m.DatabaseType, m.BackupSizeBytes, m.Timestamp.Format("2006-01-02 15:04:05Z"))
	}
	tw.Flush()
	return 0
}

// cmdBackup: label-backup backup <container> — one backup now, with the
// container's labels, without a running agent.
func cmdBackup(ctx context.Context, cfg config.Config, logger hclog.Logger, args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: label-backup backup <container name or id>")
		return 2
	}
	spec, id, err := containerSpec(ctx, args[0])
	if err != nil {
		return fail(err)
	}
	runner, err := newRunner(ctx, cfg, logger)
	if err != nil {
		return fail(err)
	}
	name := strings.TrimPrefix(args[0], "/")
	res := runner.Run(ctx, pipeline.Job{ContainerID: id, ContainerName: name, Spec: spec})
	if res.Err != nil {
		return fail(res.Err)
	}
	printJSON(res.Metadata)
	return 0
}

// containerSpec reads a container's backup labels.
func containerSpec(ctx context.Context, name string) (labels.Spec, string, error) {
	cli, err := discovery.NewClient()
	if err != nil {
		return labels.Spec{}, "", err
	}
	defer cli.Close()
	info, err := cli.ContainerInspect(ctx, name)
	if client.IsErrNotFound(err) {
		return labels.Spec{}, "", fmt.Errorf("no container %q", name)
	}
	if err != nil {
		return labels.Spec{}, "", fmt.Errorf("inspecting %q: %w", name, err)
	}
	spec, err := labels.Decode(info.Config.Labels)
	if err != nil {
		return labels.Spec{}, "", fmt.Errorf("container %q: %w", name, err)
	}
	if !spec.Enabled {
		return labels.Spec{}, "", fmt.Errorf("container %q does not have backup.enabled=true", name)
	}
	return spec, info.ID, nil
}

func destFlag(d string) string {
	switch d {
	case "s3", "remote":
		return labels.DestRemote
	case "local":
		return labels.DestLocal
	}
	return ""
}

func fail(err error) int {
	fmt.Fprintln(os.Stderr, "label-backup:", err)
	if errors.Is(err, sdk.ErrIntegrity) {
		return 3
	}
	return 1
}

// optionFlags collects repeated key=value flags.
type optionFlags map[string]string

func (o *optionFlags) String() string { return fmt.Sprint(map[string]string(*o)) }

func (o *optionFlags) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", v)
	}
	if *o == nil {
		*o = optionFlags{}
	}
	(*o)[k] = val
	return nil
}
