// Command label-backup is the Label Backup agent: it discovers labeled
// database containers and backs them up on their schedules.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
	_ "time/tzdata" // schedules with CRON_TZ= or TZ work even without system zoneinfo

	"github.com/hashicorp/go-hclog"

	"github.com/labelbackup/label-backup/host/internal/agent"
	"github.com/labelbackup/label-backup/host/internal/config"
	"github.com/labelbackup/label-backup/host/internal/pipeline"
	"github.com/labelbackup/label-backup/host/internal/pluginmgr"
)

const usage = `usage: label-backup [command]

commands:
  run          run the agent (the default)
  backup       back up one labeled container now, without the agent
  restore      restore a backup (checksum verified first) into its database
  list         list stored backups with their metadata (--json)
  verify       recompute the checksums of stored backups against their metadata
  plugins      list installed plugins (--json for JSON)
  healthcheck exit 0 when the running agent's /healthz answers (for HEALTHCHECK)
  version      print the version
`

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	cmd := "run"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	cfg, err := config.FromEnvAndFile()
	if err != nil {
		fmt.Fprintln(os.Stderr, "label-backup:", err)
		return 2
	}
	logger := hclog.New(&hclog.LoggerOptions{
		Name:       "label-backup",
		Level:      cfg.LogLevel,
		JSONFormat: cfg.LogJSON,
		Output:     os.Stderr,
	})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	switch cmd {
	case "run":
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		if err := agent.Run(ctx, cfg, logger, hup, config.FromEnvAndFile); err != nil {
			logger.Error("agent failed", "error", err)
			return 1
		}
		return 0
	case "backup":
		return cmdBackup(ctx, cfg, logger, args)
	case "restore":
		return cmdRestore(ctx, cfg, logger, args)
	case "list":
		return cmdList(ctx, cfg, logger, args)
	case "verify":
		return cmdVerify(ctx, cfg, logger, args)
	case "plugins":
		return listPlugins(ctx, cfg, logger, len(args) > 0 && args[0] == "--json")
	case "healthcheck":
		return healthcheck(cfg.HTTPAddr)
	case "version":
		fmt.Println("label-backup", pipeline.AgentVersion)
		return 0
	case "help", "-h", "--help":
		fmt.Print(usage)
		return 0
	}
	fmt.Fprintf(os.Stderr, "label-backup: unknown command %q\n\n%s", cmd, usage)
	return 2
}

func listPlugins(ctx context.Context, cfg config.Config, logger hclog.Logger, asJSON bool) int {
	m, err := pluginmgr.New(ctx, cfg.PluginDir, logger.Named("plugins"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "label-backup:", err)
		return 1
	}
	entries, broken := m.List()
	if asJSON {
		out := map[string]any{"plugins": entries, "rejected": broken}
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(out)
		return 0
	}
	for _, e := range entries {
		fmt.Printf("%-8s %-12s %-8s %v\n", e.Info.Kind, e.Info.Name, e.Info.Version, e.Info.Capabilities)
	}
	for f, why := range broken {
		fmt.Printf("rejected %s: %s\n", f, why)
	}
	return 0
}

// healthcheck asks the local agent's /healthz; the image has no curl.
func healthcheck(addr string) int {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck: HTTP_ADDR:", err)
		return 1
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	client := &http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get("http://" + net.JoinHostPort(host, port) + "/healthz")
	if err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, "healthcheck: status", resp.Status)
		return 1
	}
	return 0
}
