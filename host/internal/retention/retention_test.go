package retention

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/labelbackup/label-backup/host/internal/metadata"
	"github.com/labelbackup/label-backup/host/internal/objname"
	"github.com/labelbackup/label-backup/sdk"
	"github.com/labelbackup/label-backup/sdk/sdktest"
)

var now = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

type fixture struct {
	t    *testing.T
	sink *sdk.SinkClient
}

func newFixture(t *testing.T) *fixture {
	// Through the real wire shims, as the agent talks to a sink plugin.
	return &fixture{t: t, sink: sdktest.SinkClient(t, sdktest.NewMemorySink())}
}

// backup stores a backup of container taken age ago, with metadata unless
// success is nil.
func (f *fixture) backup(prefix, container string, age time.Duration, success *bool) string {
	f.t.Helper()
	key := objname.Name{Prefix: prefix, Container: container, Type: "postgres", Database: "app",
		Time: now.Add(-age), RunID: objname.NewRunID(), Ext: ".dump.gz"}.Key()
	f.put(key, "backup bytes")
	if success != nil {
		m, _ := metadata.Metadata{ContainerName: container, Success: *success, Object: key}.Marshal()
		f.put(key+objname.MetadataSuffix, string(m))
	}
	return key
}

func (f *fixture) put(key, data string) {
	f.t.Helper()
	if _, err := f.sink.Put(context.Background(), sdk.PutRequest{Key: key}, strings.NewReader(data)); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) keys() map[string]bool {
	f.t.Helper()
	page, err := f.sink.List(context.Background(), sdk.ListRequest{})
	if err != nil {
		f.t.Fatal(err)
	}
	out := map[string]bool{}
	for _, o := range page.Objects {
		out[o.Key] = true
	}
	return out
}

func ok() *bool  { b := true; return &b }
func bad() *bool { b := false; return &b }

func prune(t *testing.T, f *fixture, job Job, p Policy) Report {
	t.Helper()
	var logs bytes.Buffer
	rep, err := Prune(context.Background(), f.sink, job, p, now, hclog.New(&hclog.LoggerOptions{Output: &logs}))
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestExpiryByAge(t *testing.T) {
	f := newFixture(t)
	var keys []string
	for _, age := range []time.Duration{1 * day, 3 * day, 6 * day, 8 * day, 10 * day} {
		keys = append(keys, f.backup("pg", "db", age, ok()))
	}
	rep := prune(t, f, Job{Prefix: "pg", ContainerName: "db"}, Policy{Period: 7 * day, KeepLast: 1})
	left := f.keys()
	for i, k := range keys {
		gone := i >= 3
		if left[k] == gone || left[k+objname.MetadataSuffix] == gone {
			t.Errorf("backup %d (age index) present=%v metadata=%v, want gone=%v", i, left[k], left[k+objname.MetadataSuffix], gone)
		}
	}
	if len(rep.Deleted) != 2 || rep.Kept != 3 {
		t.Errorf("report = %+v", rep)
	}
}

// TestKeepLastWhileDumpsFail: when every backup is older than the period
// (dumps have been failing for weeks), the newest successful ones stay.
func TestKeepLastWhileDumpsFail(t *testing.T) {
	f := newFixture(t)
	newest := f.backup("", "db", 20*day, ok())
	second := f.backup("", "db", 21*day, ok())
	failedMeta := f.backup("", "db", 19*day, bad()) // a failure record is not a backup to keep
	old := f.backup("", "db", 30*day, ok())
	rep := prune(t, f, Job{ContainerName: "db"}, Policy{Period: 7 * day, KeepLast: 2})
	left := f.keys()
	if !left[newest] || !left[second] {
		t.Errorf("the newest successful backups were deleted: %v", left)
	}
	if left[old] || left[failedMeta] {
		t.Errorf("old backups kept: %v", left)
	}
	if rep.Kept != 2 {
		t.Errorf("report = %+v", rep)
	}
	// KeepLast 0 still means one.
	prune(t, f, Job{ContainerName: "db"}, Policy{Period: time.Hour, KeepLast: 0})
	if left := f.keys(); !left[newest] {
		t.Error("KeepLast 0 deleted the last backup")
	}
}

func TestDryRunDeletesNothing(t *testing.T) {
	f := newFixture(t)
	f.backup("p", "db", 1*day, ok())
	old := f.backup("p", "db", 10*day, ok())
	before := f.keys()
	rep := prune(t, f, Job{Prefix: "p", ContainerName: "db"}, Policy{Period: 7 * day, KeepLast: 1, DryRun: true})
	if len(rep.Deleted) != 1 || rep.Deleted[0] != old || !rep.DryRun {
		t.Errorf("report = %+v, want the old backup listed", rep)
	}
	if after := f.keys(); len(after) != len(before) {
		t.Errorf("dry run deleted objects: %d -> %d", len(before), len(after))
	}
}

// TestNeighboursUntouched: other containers under the same prefix,
// unrelated files, files named like ours without metadata but young, and
// anything outside the job's directory stay.
func TestNeighboursUntouched(t *testing.T) {
	f := newFixture(t)
	f.backup("shared", "db", 1*day, ok())
	target := f.backup("shared", "db", 30*day, ok())
	neighbour := f.backup("shared", "db2", 30*day, ok())
	neighbourPrefixed := f.backup("shared", "db-old", 30*day, ok())
	unrelated := []string{
		"shared/db/notes.txt",
		"shared/db/postgres-2020-01-01.sql.gz",
		"shared/readme.md",
		"elsewhere/db/" + strings.TrimPrefix(target, "shared/db/"),
		"db/" + strings.TrimPrefix(target, "shared/db/"),
	}
	for _, k := range unrelated {
		f.put(k, "not a backup of this job")
	}
	young := objname.Name{Prefix: "shared", Container: "db", Type: "postgres", Time: now.Add(-time.Minute), RunID: "0000aaaa", Ext: ".dump.gz"}.Key()
	f.put(young, "being written")
	prune(t, f, Job{Prefix: "shared", ContainerName: "db"}, Policy{Period: 7 * day, KeepLast: 1})
	left := f.keys()
	if left[target] {
		t.Error("the job's old backup survived")
	}
	for _, k := range append(unrelated, neighbour, neighbourPrefixed, young) {
		if !left[k] {
			t.Errorf("%s was deleted", k)
		}
	}
}

// TestEmptyPrefixIsNotEverything: with no prefix, only the container's own
// directory is considered.
func TestEmptyPrefixIsNotEverything(t *testing.T) {
	f := newFixture(t)
	f.backup("", "db", 1*day, ok())
	other := f.backup("", "other", 30*day, ok())
	f.put("some/file", "x")
	f.put(strings.TrimPrefix(other, "other/"), "x") // a backup-like name at the root
	prune(t, f, Job{ContainerName: "db"}, Policy{Period: time.Hour, KeepLast: 1})
	left := f.keys()
	if !left[other] || !left["some/file"] || !left[strings.TrimPrefix(other, "other/")] {
		t.Errorf("objects outside the job's directory deleted: %v", left)
	}
}

func TestStaleWithoutMetadataAndOrphanedMetadata(t *testing.T) {
	f := newFixture(t)
	f.backup("", "db", 1*day, ok())
	// A backup whose metadata was never written, and a metadata file whose
	// backup is gone: both old, both pruned.
	noMeta := f.backup("", "db", 10*day, nil)
	orphan := f.backup("", "db", 10*day, ok())
	if err := f.sink.Delete(context.Background(), orphan); err != nil {
		t.Fatal(err)
	}
	// The memory sink stamps objects with the real clock: prune "later".
	var logs bytes.Buffer
	_, err := Prune(context.Background(), f.sink, Job{ContainerName: "db"}, Policy{Period: 7 * day, KeepLast: 1},
		time.Now().Add(8*day), hclog.New(&hclog.LoggerOptions{Output: &logs}))
	if err != nil {
		t.Fatal(err)
	}
	left := f.keys()
	if left[noMeta] || left[orphan+objname.MetadataSuffix] {
		t.Errorf("stale leftovers kept: %v", left)
	}
}

func TestManyPages(t *testing.T) {
	f := newFixture(t)
	for i := range 30 {
		f.backup("p", "db", time.Duration(i+1)*day, ok())
	}
	rep := prune(t, f, Job{Prefix: "p", ContainerName: "db"}, Policy{Period: 10 * day, KeepLast: 3})
	if len(rep.Deleted) != 20 || rep.Kept != 10 {
		t.Errorf("report: %d deleted, %d kept; want 20 and 10", len(rep.Deleted), rep.Kept)
	}
	if n := len(f.keys()); n != 20 {
		t.Errorf("%d objects left, want 10 backups + 10 metadata", n)
	}
}

func TestOrphans(t *testing.T) {
	f := newFixture(t)
	f.backup("p", "gone", 30*day, ok())
	f.backup("p", "alive", 1*day, ok())
	f.backup("p/deeper", "other", 1*day, ok()) // a different prefix
	f.backup("", "rootgone", 1*day, ok())
	f.put("p/gone-notes.txt", "x")
	got, err := Orphans(context.Background(), f.sink, "p", map[string]bool{"alive": true})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != "gone" {
		t.Errorf("orphans under p = %v, want [gone]", got)
	}
	got, _ = Orphans(context.Background(), f.sink, "", map[string]bool{})
	if len(got) != 1 || got[0] != "rootgone" {
		t.Errorf("orphans at the root = %v, want [rootgone]", got)
	}
}
