package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"os"
	"strings"
	"sync"
)

// SignatureHeader carries the hex HMAC-SHA256 of the raw body.
const SignatureHeader = "X-LabelBackup-Signature-SHA256"

// maxBody bounds a notification body; real ones are well under 4 KiB.
const maxBody = 1 << 20

// Payload is the notification body, field for field as Label Backup
// documents it.
type Payload struct {
	ContainerID     string  `json:"container_id"`
	ContainerName   string  `json:"container_name"`
	DatabaseType    string  `json:"database_type"`
	DatabaseName    string  `json:"database_name,omitempty"`
	DestinationURL  string  `json:"destination_url"`
	Success         bool    `json:"success"`
	Error           string  `json:"error,omitempty"`
	BackupSizeBytes *int64  `json:"backup_size_bytes,omitempty"`
	DurationSeconds float64 `json:"duration_seconds"`
	TimestampUTC    string  `json:"timestamp_utc"`
	CronSchedule    string  `json:"cron_schedule,omitempty"`
	BackupPrefix    string  `json:"backup_prefix,omitempty"`
	DestinationType string  `json:"destination_type,omitempty"`
}

// Sign returns the hex HMAC-SHA256 of body under secret.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether signature is body's signature under secret. The
// comparison is timing-safe: hmac.Equal takes the same time wherever the
// first differing byte is, so an attacker cannot learn the expected
// signature byte by byte. The header is compared as sent, case and all,
// like the documented recipe (lower-case hex).
func Verify(secret string, body []byte, signature string) bool {
	if secret == "" || signature == "" {
		return false
	}
	return hmac.Equal([]byte(Sign(secret, body)), []byte(signature))
}

// Recorder appends verified payloads to a file, one JSON line each.
type Recorder struct {
	mu sync.Mutex
	f  *os.File
}

// Record appends body, compacted onto one line.
func (r *Recorder) Record(body []byte) error {
	var line bytes.Buffer
	if err := json.Compact(&line, body); err != nil {
		return err
	}
	line.WriteByte('\n')
	r.mu.Lock()
	defer r.mu.Unlock()
	_, err := r.f.Write(line.Bytes())
	return err
}

// Close closes the file.
func (r *Recorder) Close() error { return r.f.Close() }

// NewHandler serves POST /webhook and GET /health. rec may be nil.
func NewHandler(secret string, rec *Recorder, logger *log.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
	})
	mux.HandleFunc("POST /webhook", func(w http.ResponseWriter, r *http.Request) {
		// Verify the raw bytes exactly as received: re-encoding the JSON
		// first would change them and break the signature.
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				writeJSON(w, http.StatusRequestEntityTooLarge, map[string]any{"error": "body too large"})
				return
			}
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": "cannot read body"})
			return
		}
		if !Verify(secret, body, strings.TrimSpace(r.Header.Get(SignatureHeader))) {
			logger.Printf("Invalid webhook signature from %s", r.RemoteAddr)
			writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "Invalid signature"})
			return
		}
		var p Payload
		if err := json.Unmarshal(body, &p); err != nil {
			logger.Printf("Webhook processing error: %v", err)
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid JSON payload"})
			return
		}
		logPayload(logger, p)
		if rec != nil {
			if err := rec.Record(body); err != nil {
				logger.Printf("Webhook processing error: recording payload: %v", err)
				writeJSON(w, http.StatusInternalServerError, map[string]any{"error": "Internal server error"})
				return
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"received": true})
	})
	return mux
}

// logPayload logs a notification the way the README's Node.js example
// does.
func logPayload(l *log.Logger, p Payload) {
	if p.Success {
		l.Printf("✅ Backup successful for %s", p.ContainerName)
		db := p.DatabaseName
		if db == "" {
			db = "default"
		}
		l.Printf("   Database: %s/%s", p.DatabaseType, db)
		if p.BackupSizeBytes != nil {
			l.Printf("   Size: %.2f MB", float64(*p.BackupSizeBytes)/1024/1024)
		}
		l.Printf("   Duration: %gs", p.DurationSeconds)
		l.Printf("   Destination: %s", p.DestinationURL)
	} else {
		l.Printf("❌ Backup failed for %s", p.ContainerName)
		l.Printf("   Error: %s", p.Error)
		l.Printf("   Duration: %gs", p.DurationSeconds)
	}
	l.Printf("Backup event at %s for container %s", p.TimestampUTC, p.ContainerID)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
