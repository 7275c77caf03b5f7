package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labelbackup/label-backup/host/internal/itest"
	"github.com/labelbackup/label-backup/host/internal/webhook"
)

// TestWebhooksSigned: every outcome reaches the receiver as the documented
// payload, signed with WEBHOOK_SECRET; backup.webhook overrides WEBHOOK_URL.
func TestWebhooksSigned(t *testing.T) {
	const secret = "e2e-webhook-secret"
	type got struct {
		path string
		body map[string]any
	}
	var mu sync.Mutex
	var received []got
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !webhook.Verify(secret, body, r.Header.Get("X-LabelBackup-Signature-SHA256")) ||
			r.Header.Get("User-Agent") != "LabelBackupAgent/1.0" || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("bad signature or headers on %s", r.URL.Path)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Errorf("body is not JSON: %v", err)
		}
		mu.Lock()
		received = append(received, got{r.URL.Path, m})
		mu.Unlock()
	}))
	defer srv.Close()

	ok := startLabeled(t, "lbe2e-hook-ok", map[string]string{
		"backup.enabled": "true", "backup.type": "synthetic", "backup.cron": "*/2 * * * * *",
		"backup.conn": "synthetic://?size=1048576", "backup.prefix": "hooks",
	})
	bad := startLabeled(t, "lbe2e-hook-bad", map[string]string{
		"backup.enabled": "true", "backup.type": "synthetic", "backup.cron": "*/2 * * * * *",
		"backup.conn": "synthetic://?size=4194304&crash_after=1048576", "backup.webhook": srv.URL + "/override",
	})
	backups := filepath.Join(t.TempDir(), "backups")
	itest.StartAgent(t, map[string]string{
		"LOCAL_BACKUP_PATH": backups,
		"WEBHOOK_URL":       srv.URL + "/global",
		"WEBHOOK_SECRET":    secret,
	})

	find := func(path string) map[string]any {
		mu.Lock()
		defer mu.Unlock()
		for _, g := range received {
			if g.path == path {
				return g.body
			}
		}
		return nil
	}
	itest.WaitFor(t, 30*time.Second, "a success and a failure notification", func() bool {
		return find("/global") != nil && find("/override") != nil
	})
	success, failure := find("/global"), find("/override")

	if success["success"] != true || success["container_name"] != ok || success["database_type"] != "synthetic" ||
		success["destination_type"] != "local" || success["backup_prefix"] != "hooks" || success["cron_schedule"] != "*/2 * * * * *" {
		t.Errorf("success payload = %v", success)
	}
	if url, _ := success["destination_url"].(string); !strings.HasPrefix(url, backups) {
		t.Errorf("destination_url = %q, want a path under %s", url, backups)
	}
	if size, _ := success["backup_size_bytes"].(float64); size <= 0 {
		t.Errorf("backup_size_bytes = %v", success["backup_size_bytes"])
	}
	if _, has := success["error"]; has {
		t.Error("success payload has an error field")
	}
	if ts, _ := success["timestamp_utc"].(string); !strings.HasSuffix(ts, "Z") {
		t.Errorf("timestamp_utc = %q, want UTC ISO 8601", ts)
	}

	if failure["success"] != false || failure["container_name"] != bad || failure["destination_url"] != "" {
		t.Errorf("failure payload = %v", failure)
	}
	if msg, _ := failure["error"].(string); !strings.Contains(msg, "exited unexpectedly") {
		t.Errorf("failure error = %q", msg)
	}
	if _, has := failure["backup_size_bytes"]; has {
		t.Error("failure payload has backup_size_bytes")
	}
}
