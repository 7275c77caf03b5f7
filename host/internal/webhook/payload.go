package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"
)

// Payload is the JSON body of a notification, field for field as the README
// documents it. Presence rules: error only on failure, backup_size_bytes
// only on success, destination_url always (empty on failure).
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
	// TimestampUTC is ISO 8601 in UTC with microseconds, like the README's
	// example "2025-01-24T10:54:00.123456Z".
	TimestampUTC    string `json:"timestamp_utc"`
	CronSchedule    string `json:"cron_schedule,omitempty"`
	BackupPrefix    string `json:"backup_prefix,omitempty"`
	DestinationType string `json:"destination_type,omitempty"`
}

// TimestampLayout formats TimestampUTC.
const TimestampLayout = "2006-01-02T15:04:05.000000Z"

// Timestamp renders t for TimestampUTC.
func Timestamp(t time.Time) string { return t.UTC().Format(TimestampLayout) }

// Size returns a pointer for BackupSizeBytes.
func Size(n int64) *int64 { return &n }

// Marshal renders the exact bytes that are sent and signed.
func (p Payload) Marshal() ([]byte, error) { return json.Marshal(p) }

// Sign returns the hex HMAC-SHA256 of body under secret: the value of the
// X-LabelBackup-Signature-SHA256 header.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Verify checks a signature in constant time, as receivers should.
func Verify(secret string, body []byte, signature string) bool {
	want := Sign(secret, body)
	return hmac.Equal([]byte(want), []byte(signature))
}
