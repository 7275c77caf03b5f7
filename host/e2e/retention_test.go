package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labelbackup/label-backup/host/internal/itest"
	"github.com/labelbackup/label-backup/host/internal/objname"
)

// TestRetentionLocal: backups older than backup.retention go (with their
// metadata) after each backup; the neighbour under the same prefix and an
// unrelated file stay; GC_DRY_RUN deletes nothing but says what it would.
func TestRetentionLocal(t *testing.T) {
	for _, dryRun := range []bool{false, true} {
		name := "prune"
		if dryRun {
			name = "dryrun"
		}
		t.Run(name, func(t *testing.T) {
			pruned := startLabeled(t, "lbe2e-ret-"+name, map[string]string{
				"backup.enabled": "true", "backup.type": "synthetic", "backup.cron": "*/1 * * * * *",
				"backup.conn": "synthetic://?size=65536", "backup.prefix": "ret", "backup.retention": "3s", "backup.keep": "1",
			})
			// A neighbour with long retention whose old backup must stay.
			neighbour := startLabeled(t, "lbe2e-ret-nb-"+name, map[string]string{
				"backup.enabled": "true", "backup.type": "synthetic", "backup.cron": "@every 1h",
				"backup.conn": "synthetic://?size=65536", "backup.prefix": "ret",
			})
			backups := filepath.Join(t.TempDir(), "backups")
			unrelated := filepath.Join(backups, "ret", pruned, "notes.txt")
			if err := os.MkdirAll(filepath.Dir(unrelated), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(unrelated, []byte("keep me"), 0o600); err != nil {
				t.Fatal(err)
			}
			env := map[string]string{"LOCAL_BACKUP_PATH": backups}
			if dryRun {
				env["GC_DRY_RUN"] = "true"
			}
			// An old backup of the neighbour, as the agent names them.
			oldKey := objname.Name{Prefix: "ret", Container: neighbour, Type: "synthetic",
				Time: time.Now().Add(-30 * 24 * time.Hour), RunID: "0123abcd", Ext: ".txt.gz"}.Key()
			oldFile := filepath.Join(backups, filepath.FromSlash(oldKey))
			for _, f := range []string{oldFile, oldFile + objname.MetadataSuffix} {
				if err := os.MkdirAll(filepath.Dir(f), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(f, []byte(`{"success":true,"container_name":"`+neighbour+`"}`), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			agent := itest.StartAgent(t, env)

			count := func() int {
				m, _ := filepath.Glob(filepath.Join(backups, "ret", pruned, "*.txt.gz"))
				return len(m)
			}
			// Let backups pile up well past the period.
			time.Sleep(9 * time.Second)
			n := count()
			if dryRun {
				if n < 7 {
					t.Errorf("dry run: %d backups after 9 s of 1 s backups; something was deleted", n)
				}
				if !strings.Contains(agent.Logs(), "would delete") {
					t.Error("dry run logged nothing about what it would delete")
				}
			} else if n > 5 {
				t.Errorf("%d backups kept with a 3 s retention and 1 s backups; want at most ~4", n)
			}
			// The API reports what the last prune did.
			var jobs struct {
				Jobs []struct {
					ContainerName string `json:"container_name"`
					LastRun       *struct {
						Retention *struct {
							Deleted []string `json:"deleted"`
							DryRun  bool     `json:"dry_run"`
						} `json:"retention"`
					} `json:"last_run"`
				} `json:"jobs"`
			}
			agent.GetJSON(t, "/jobs", &jobs)
			for _, j := range jobs.Jobs {
				if j.ContainerName == pruned && (j.LastRun == nil || j.LastRun.Retention == nil || j.LastRun.Retention.DryRun != dryRun) {
					t.Errorf("/jobs last_run of %s lacks the retention report: %+v", pruned, j.LastRun)
				}
			}
			metas, _ := filepath.Glob(filepath.Join(backups, "ret", pruned, "*.metadata.json"))
			if len(metas) != n {
				t.Errorf("%d metadata files for %d backups: pairs were split", len(metas), n)
			}
			for _, f := range []string{unrelated, oldFile, oldFile + objname.MetadataSuffix} {
				if _, err := os.Stat(f); err != nil {
					t.Errorf("a file outside the job's backups was removed: %v", err)
				}
			}
		})
	}
}
