package objname

import (
	"testing"
	"time"
)

func TestKeyAndParse(t *testing.T) {
	ts := time.Date(2025, 1, 24, 2, 0, 0, 123, time.FixedZone("x", 3600))
	tests := []struct {
		name string
		in   Name
		key  string
	}{
		{"full", Name{Prefix: "postgres-backups", Container: "myapp_postgres", Type: "postgres", Database: "myapp", Time: ts, RunID: "9f86d081", Ext: ".dump.gz"},
			"postgres-backups/myapp_postgres/postgres-myapp-20250124T010000Z-9f86d081.dump.gz"},
		{"no prefix, no database", Name{Container: "cache", Type: "redis", Time: ts, RunID: "00000000", Ext: ".rdb.zst"},
			"cache/redis-20250124T010000Z-00000000.rdb.zst"},
		{"nested prefix, odd database", Name{Prefix: "prod/pg", Container: "db-1", Type: "postgres", Database: "my-db/x", Time: ts, RunID: "abcdef01", Ext: ".dump"},
			"prod/pg/db-1/postgres-my_db_x-20250124T010000Z-abcdef01.dump"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := tt.in.Key()
			if key != tt.key {
				t.Fatalf("Key() = %q, want %q", key, tt.key)
			}
			got, ok := Parse(key)
			if !ok {
				t.Fatalf("Parse(%q) failed", key)
			}
			if got.Key() != key || !got.Time.Equal(ts.Truncate(time.Second)) {
				t.Errorf("Parse(%q) = %+v", key, got)
			}
		})
	}
}

func TestParseRejectsForeignFiles(t *testing.T) {
	for _, k := range []string{
		"notes.txt",
		"prefix/c/postgres-20250124T010000Z-9f86d081.dump.gz.metadata.json",
		"prefix/c/postgres-2025-01-24.sql.gz",
		"postgres-myapp-20250124T010000Z-9f86d081.dump.gz", // no container directory
		"p/c/postgres-myapp-20250124T010000Z-XYZ.dump.gz",
	} {
		if _, ok := Parse(k); ok {
			t.Errorf("Parse(%q) accepted a name this agent does not write", k)
		}
	}
}

func TestRunIDsDiffer(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := NewRunID()
		if len(id) != 8 || seen[id] {
			t.Fatalf("run id %q repeated or malformed", id)
		}
		seen[id] = true
	}
}

func TestDir(t *testing.T) {
	if got := Dir("", "c"); got != "c/" {
		t.Errorf("Dir = %q", got)
	}
	if got := Dir("a/b", "my-db"); got != "a/b/my-db/" {
		t.Errorf("Dir = %q", got)
	}
}
