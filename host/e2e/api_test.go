package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labelbackup/label-backup/host/internal/itest"
)

func get(t *testing.T, rawURL string) (int, string) {
	t.Helper()
	resp, err := http.Get(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestAPI: /readyz, /metadata (with its path-safety rules) and /metrics on
// a running agent.
func TestAPI(t *testing.T) {
	c := startLabeled(t, "lbe2e-api", map[string]string{
		"backup.enabled": "true", "backup.type": "synthetic", "backup.cron": "*/1 * * * * *",
		"backup.conn": "synthetic://?size=65536", "backup.prefix": "api",
	})
	base := t.TempDir()
	backups := filepath.Join(base, "backups")
	agent := itest.StartAgent(t, map[string]string{"LOCAL_BACKUP_PATH": backups})

	var object string
	itest.WaitFor(t, 20*time.Second, "a backup", func() bool {
		var v jobsView
		agent.GetJSON(t, "/jobs", &v)
		for _, j := range v.Jobs {
			if j.ContainerName == c && j.LastRun != nil && j.LastRun.Object != "" {
				object = j.LastRun.Object
				return true
			}
		}
		return false
	})

	code, body := get(t, agent.URL+"/readyz")
	if code != http.StatusOK || !strings.Contains(body, "ok   docker") || !strings.Contains(body, "ok   local storage") {
		t.Errorf("/readyz = %d\n%s", code, body)
	}

	code, body = get(t, agent.URL+"/metadata?object="+url.QueryEscape(object))
	var meta map[string]any
	if code != http.StatusOK || json.Unmarshal([]byte(body), &meta) != nil || meta["container_name"] != c || meta["success"] != true {
		t.Errorf("/metadata = %d %s", code, body)
	}
	for _, tc := range []struct {
		object string
		code   int
	}{
		{"", http.StatusBadRequest},
		{"../../../etc/passwd", http.StatusBadRequest},
		{"/etc/passwd", http.StatusBadRequest},
		{"api/" + c + "/../../../backups_old/x/postgres-20250101T000000Z-0123abcd.dump.gz", http.StatusBadRequest},
		{"api/" + c + "/notes.txt", http.StatusBadRequest},
		{"api/" + c + "/synthetic-20200101T000000Z-0123abcd.txt.gz", http.StatusNotFound},
	} {
		code, body := get(t, agent.URL+"/metadata?object="+url.QueryEscape(tc.object))
		if code != tc.code {
			t.Errorf("/metadata?object=%q = %d, want %d (%s)", tc.object, code, tc.code, body)
		}
		if strings.Contains(body, base) {
			t.Errorf("/metadata?object=%q reveals a path: %s", tc.object, body)
		}
	}

	code, body = get(t, agent.URL+"/metrics")
	for _, want := range []string{
		`labelbackup_backups_total{container="` + c + `",result="success"}`,
		`labelbackup_last_success_timestamp_seconds{container="` + c + `"}`,
		"labelbackup_queued_backups 0",
	} {
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestReadyzFailsOnBadStorage: a storage that cannot be used makes /readyz
// answer 503 with a line naming it, while /healthz stays 200.
func TestReadyzFailsOnBadStorage(t *testing.T) {
	agent := itest.StartAgent(t, map[string]string{
		"LOCAL_BACKUP_PATH": filepath.Join(t.TempDir(), "b"),
		"BUCKET_NAME":       "nobucket",
		"ENDPOINT":          "http://127.0.0.1:1",
		"ACCESS_KEY_ID":     "x",
		"SECRET_ACCESS_KEY": "also-secret-y",
		"S3_USE_PATH_STYLE": "true",
	})
	code, body := get(t, agent.URL+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "FAIL") || !strings.Contains(body, "ok   local storage") {
		t.Errorf("/readyz = %d\n%s", code, body)
	}
	if strings.Contains(body, "also-secret-y") {
		t.Error("/readyz reveals the secret key")
	}
	if code, _ := get(t, agent.URL+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d", code)
	}
}
