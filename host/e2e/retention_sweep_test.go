package e2e

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/labelbackup/label-backup/host/internal/itest"
	"github.com/labelbackup/label-backup/host/internal/metadata"
	"github.com/labelbackup/label-backup/host/internal/objname"
)

// TestRetentionSweepKeepsLastWhileFailing, on the local and the S3 sink:
// a container whose dumps keep failing has only old backups; the sweep
// deletes all but the newest (backup.keep=1) even though every one is past
// the retention period, and leaves a neighbour's old backup and an
// unrelated file under the same prefix alone.
func TestRetentionSweepKeepsLastWhileFailing(t *testing.T) {
	for _, dest := range []string{"local", "s3"} {
		t.Run(dest, func(t *testing.T) {
			failing := startLabeled(t, "lbe2e-sweep-"+dest, map[string]string{
				"backup.enabled": "true", "backup.type": "synthetic", "backup.cron": "@every 1h",
				"backup.conn": "synthetic://?size=4194304&crash_after=1024", "backup.dest": dest,
				"backup.prefix": "sweep", "backup.retention": "7d", "backup.keep": "1",
			})
			env := map[string]string{"GC_SCHEDULE": "*/2 * * * * *"}
			local := filepath.Join(t.TempDir(), "backups")
			env["LOCAL_BACKUP_PATH"] = local
			root := local // where objects are files
			if dest == "s3" {
				s3 := itest.StartS3(t)
				for k, v := range s3.AgentEnv() {
					env[k] = v
				}
				root = filepath.Join(s3.Root, s3.Bucket)
			}
			seed := func(container string, age time.Duration) string {
				key := objname.Name{Prefix: "sweep", Container: container, Type: "synthetic",
					Time: time.Now().Add(-age), RunID: objname.NewRunID(), Ext: ".txt.gz"}.Key()
				meta, _ := metadata.Metadata{ContainerName: container, Success: true, Object: key}.Marshal()
				for name, body := range map[string][]byte{key: []byte("old backup"), key + objname.MetadataSuffix: meta} {
					p := filepath.Join(root, filepath.FromSlash(name))
					if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(p, body, 0o600); err != nil {
						t.Fatal(err)
					}
				}
				return key
			}
			newest := seed(failing, 20*24*time.Hour)
			older := []string{seed(failing, 30*24*time.Hour), seed(failing, 40*24*time.Hour)}
			neighbour := seed("lbe2e-sweep-neighbour", 90*24*time.Hour)
			unrelated := filepath.Join(root, "sweep", failing, "notes.txt")
			if err := os.WriteFile(unrelated, []byte("keep"), 0o600); err != nil {
				t.Fatal(err)
			}
			exists := func(key string) bool {
				_, err := os.Stat(filepath.Join(root, filepath.FromSlash(key)))
				return err == nil
			}
			agent := itest.StartAgent(t, env)
			itest.WaitFor(t, 30*time.Second, "the sweep to prune the older backups", func() bool {
				return !exists(older[0]) && !exists(older[1])
			})
			agent.Stop(t)
			for _, k := range []string{newest, newest + objname.MetadataSuffix, neighbour, neighbour + objname.MetadataSuffix} {
				if !exists(k) {
					t.Errorf("%s was deleted", k)
				}
			}
			for _, k := range older {
				if exists(k + objname.MetadataSuffix) {
					t.Errorf("%s's metadata outlived it", k)
				}
			}
			if _, err := os.Stat(unrelated); err != nil {
				t.Errorf("unrelated file deleted: %v", err)
			}
		})
	}
}
