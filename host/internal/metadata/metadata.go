// Package metadata defines the <object>.metadata.json file written next to
// every backup. Field names are those the README documents; the rest are
// additions that make a backup verifiable and restorable on its own.
package metadata

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// FormatVersion is the version of this file's schema.
const FormatVersion = "1.0"

// Metadata describes one stored backup.
type Metadata struct {
	// Documented fields.
	Timestamp       time.Time `json:"timestamp"`
	ContainerID     string    `json:"container_id"`
	ContainerName   string    `json:"container_name"`
	DatabaseType    string    `json:"database_type"`
	DatabaseName    string    `json:"database_name,omitempty"`
	BackupSizeBytes int64     `json:"backup_size_bytes"`
	// Checksum is the hex sha256 of the stored bytes.
	Checksum        string  `json:"checksum"`
	CompressionType string  `json:"compression_type"`
	Version         string  `json:"version"`
	Destination     string  `json:"destination"`
	DurationSeconds float64 `json:"duration_seconds"`
	Success         bool    `json:"success"`

	// Additions.
	ChecksumAlgorithm string `json:"checksum_algorithm"`
	Object            string `json:"object"`
	RunID             string `json:"run_id"`
	DestinationType   string `json:"destination_type"`
	BackupPrefix      string `json:"backup_prefix,omitempty"`
	CronSchedule      string `json:"cron_schedule,omitempty"`
	// DumpFormat and DumpSizeBytes describe the raw dump before compression.
	DumpFormat    string `json:"dump_format,omitempty"`
	DumpSizeBytes int64  `json:"dump_size_bytes"`
	Encryption    string `json:"encryption"`
	ServerVersion string `json:"server_version,omitempty"`
	Dumper        Plugin `json:"dumper"`
	Sink          Plugin `json:"sink"`
	AgentVersion  string `json:"agent_version"`
}

// Plugin names the plugin that took part in a backup.
type Plugin struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Marshal renders m as indented JSON.
func (m Metadata) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding metadata: %w", err)
	}
	return append(b, '\n'), nil
}

// Unmarshal parses a metadata file.
func Unmarshal(b []byte) (Metadata, error) {
	var m Metadata
	if err := json.Unmarshal(b, &m); err != nil {
		return Metadata{}, fmt.Errorf("decoding metadata: %w", err)
	}
	return m, nil
}

// Getter reads one stored object (a sink's Get).
type Getter interface {
	Get(ctx context.Context, key string, w io.Writer) error
}

// MaxSize bounds a metadata file: far more than any this agent writes, so
// a huge object under a metadata name is refused instead of read into
// memory.
const MaxSize = 1 << 20

// Fetch reads the metadata file stored under key.
func Fetch(ctx context.Context, g Getter, key string) ([]byte, error) {
	w := &limitedBuffer{left: MaxSize}
	if err := g.Get(ctx, key, w); err != nil {
		return nil, err
	}
	return w.buf.Bytes(), nil
}

type limitedBuffer struct {
	buf  bytes.Buffer
	left int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if len(p) > l.left {
		return 0, fmt.Errorf("metadata file larger than %d bytes", MaxSize)
	}
	l.left -= len(p)
	return l.buf.Write(p)
}
