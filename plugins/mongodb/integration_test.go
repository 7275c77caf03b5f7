package mongodb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/labelbackup/label-backup/plugins/mongodb/internal/fdbtest"
	"github.com/labelbackup/label-backup/sdk"
)

// One FerretDB (the MongoDB stand-in, with SCRAM authentication) serves
// every integration test of the package. It starts on first use and
// TestMain stops it. A missing binary fails the tests that need it.
var (
	serverOnce sync.Once
	server     *fdbtest.Server
	serverErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if server != nil {
		if err := server.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the test FerretDB:", err)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}

func testServer(t testing.TB) *fdbtest.Server {
	t.Helper()
	serverOnce.Do(func() { server, serverErr = fdbtest.Start() })
	if serverErr != nil {
		t.Fatalf("integration tests need FerretDB: %v", serverErr)
	}
	return server
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func testClient(t testing.TB, s *fdbtest.Server) *mongo.Client {
	t.Helper()
	c, err := s.Client()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	return c
}

var nameSeq atomic.Int64

// uniqueDB names a database for one test and drops it when the test ends.
func uniqueDB(t testing.TB, c *mongo.Client, prefix string) string {
	t.Helper()
	name := fmt.Sprintf("%s_%d_%d", prefix, time.Now().UnixNano()%1e9, nameSeq.Add(1))
	t.Cleanup(func() { _ = c.Database(name).Drop(context.Background()) })
	return name
}

// seedPeople fills db with varied documents and indexes: nested
// documents, arrays, ObjectIDs, dates, binary and UUIDs, 64-bit integers,
// doubles, regular expressions, timestamps, nulls, Unicode; a unique and a
// compound index; an empty capped collection. (FerretDB 1.x cannot store
// Decimal128, MinKey/MaxKey, JavaScript or nested arrays: the unit tests
// cover those.)
func seedPeople(t testing.TB, c *mongo.Client, db string) {
	t.Helper()
	ctx := ctxT(t)
	d := c.Database(db)
	people := make([]any, 150)
	for i := range people {
		oid := bson.ObjectID{0x65, 0x00, byte(i >> 8), byte(i), 1, 2, 3, 4, 5, 6, 7, byte(i)}
		people[i] = bson.D{
			{Key: "_id", Value: oid},
			{Key: "name", Value: bson.D{{Key: "first", Value: fmt.Sprintf("Zoë-%d", i)}, {Key: "last", Value: []string{"Grüße", "Smith", "李"}[i%3]}}},
			{Key: "email", Value: fmt.Sprintf("p%d@example.com", i)},
			{Key: "age", Value: int32(18 + i%60)},
			{Key: "tags", Value: bson.A{"a", int32(i), bson.D{{Key: "k", Value: "v"}, {Key: "f", Value: 1.5}}, true}},
			{Key: "joined", Value: bson.DateTime(1700000000000 + int64(i)*86400000)},
			{Key: "avatar", Value: bson.Binary{Subtype: 0, Data: []byte{byte(i), 0, 0xff, 0x10}}},
			{Key: "uuid", Value: bson.Binary{Subtype: 4, Data: bytes.Repeat([]byte{byte(i)}, 16)}},
			{Key: "score", Value: float64(i) / 7},
			{Key: "big", Value: int64(1)<<40 + int64(i)},
			{Key: "active", Value: i%2 == 0},
			{Key: "notes", Value: nil},
			{Key: "re", Value: bson.Regex{Pattern: "^p[0-9]+", Options: "i"}},
			{Key: "ts", Value: bson.Timestamp{T: uint32(1700000000 + i), I: 1}},
		}
	}
	if _, err := d.Collection("people").InsertMany(ctx, people); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Collection("people").Indexes().CreateMany(ctx, []mongo.IndexModel{
		{Keys: bson.D{{Key: "email", Value: 1}}, Options: options.Index().SetUnique(true).SetName("email_unique")},
		{Keys: bson.D{{Key: "name.last", Value: 1}, {Key: "age", Value: -1}}},
	}); err != nil {
		t.Fatal(err)
	}
	events := make([]any, 300)
	for i := range events {
		events[i] = bson.D{
			{Key: "_id", Value: int32(i)},
			{Key: "kind", Value: []string{"click", "view", "buy"}[i%3]},
			{Key: "at", Value: bson.DateTime(1600000000000 + int64(i)*1000)},
			{Key: "payload", Value: bson.D{{Key: "nested", Value: bson.D{{Key: "deep", Value: bson.A{int32(1), int64(2), bson.D{{Key: "x", Value: fmt.Sprint(i)}}}}}}}},
		}
	}
	if _, err := d.Collection("events").InsertMany(ctx, events); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Collection("events").Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "at", Value: 1}}}); err != nil {
		t.Fatal(err)
	}
	if err := d.RunCommand(ctx, bson.D{{Key: "create", Value: "empty"}, {Key: "capped", Value: true}, {Key: "size", Value: int64(1 << 20)}}).Err(); err != nil {
		t.Fatal(err)
	}
}

// seedOrders fills db with one collection keyed by strings.
func seedOrders(t testing.TB, c *mongo.Client, db string) {
	t.Helper()
	ctx := ctxT(t)
	orders := make([]any, 100)
	for i := range orders {
		orders[i] = bson.D{
			{Key: "_id", Value: fmt.Sprintf("order-%03d", i)},
			{Key: "customer", Value: bson.D{{Key: "id", Value: int64(i % 7)}, {Key: "name", Value: "Ünïcødé"}}},
			{Key: "lines", Value: bson.A{bson.D{{Key: "sku", Value: "A"}, {Key: "qty", Value: int32(i)}}, bson.D{{Key: "sku", Value: "B"}, {Key: "qty", Value: 1.25}}}},
			{Key: "total", Value: float64(i) * 3.5},
		}
	}
	coll := c.Database(db).Collection("orders")
	if _, err := coll.InsertMany(ctx, orders); err != nil {
		t.Fatal(err)
	}
	if _, err := coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "customer.id", Value: 1}}}); err != nil {
		t.Fatal(err)
	}
}

// seedBulk adds n documents of about size bytes each to db.bulk.
func seedBulk(t testing.TB, c *mongo.Client, db string, n, size int) {
	t.Helper()
	ctx := ctxT(t)
	pad := strings.Repeat("0123456789abcdef", size/16)
	coll := c.Database(db).Collection("bulk")
	for start := 0; start < n; start += 1000 {
		batch := make([]any, 0, 1000)
		for i := start; i < min(start+1000, n); i++ {
			batch = append(batch, bson.D{{Key: "_id", Value: int32(i)}, {Key: "n", Value: int64(i) * 31}, {Key: "pad", Value: pad}})
		}
		if _, err := coll.InsertMany(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
}

// snapshot is a database's content: per collection, the documents sorted
// by _id (raw bytes), the indexes and the options as Extended JSON.
func snapshot(t testing.TB, c *mongo.Client, db string) map[string]string {
	t.Helper()
	ctx := ctxT(t)
	out := map[string]string{}
	specs, err := c.Database(db).ListCollectionSpecifications(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	for _, spec := range specs {
		coll := c.Database(db).Collection(spec.Name)
		var b strings.Builder
		fmt.Fprintf(&b, "options %s\n", spec.Options)
		cur, err := coll.Indexes().List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var idx []string
		for cur.Next(ctx) {
			idx = append(idx, cur.Current.String())
		}
		slices.Sort(idx)
		fmt.Fprintf(&b, "indexes %s\n", strings.Join(idx, "\n"))
		cur, err = coll.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
		if err != nil {
			t.Fatal(err)
		}
		for cur.Next(ctx) {
			fmt.Fprintf(&b, "%x\n", []byte(cur.Current))
		}
		if err := cur.Err(); err != nil {
			t.Fatal(err)
		}
		out[spec.Name] = b.String()
	}
	return out
}

func assertSameContent(t *testing.T, want, got map[string]string) {
	t.Helper()
	if len(want) == 0 {
		t.Fatal("empty source snapshot")
	}
	for name, w := range want {
		g, ok := got[name]
		switch {
		case !ok:
			t.Errorf("collection %s missing after restore", name)
		case g != w:
			t.Errorf("collection %s differs after restore\nwant %.600s\n got %.600s", name, w, g)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("unexpected collection %s after restore", name)
		}
	}
}

func dump(t *testing.T, target sdk.Target) ([]byte, sdk.DumpResult) {
	t.Helper()
	var buf bytes.Buffer
	res, err := New().Dump(ctxT(t), target, &buf)
	if err != nil {
		t.Fatalf("dump: %v", err)
	}
	return buf.Bytes(), res
}

func namespacesOf(t *testing.T, archive []byte) (archiveHeader, []string, map[string][][]byte) {
	t.Helper()
	h, metas, docs, _, err := collect(bytes.NewReader(archive))
	if err != nil {
		t.Fatalf("reading our own archive: %v", err)
	}
	var names []string
	for _, m := range metas {
		names = append(names, ns(m.DB, m.Collection))
	}
	return h, names, docs
}

func TestDumpRestoreOneDatabase(t *testing.T) {
	s := testServer(t)
	c := testClient(t, s)
	src := uniqueDB(t, c, "one_src")
	seedPeople(t, c, src)
	want := snapshot(t, c, src)

	archive, res := dump(t, sdk.Target{Connection: s.URI(""), Database: src})
	if res.Format != Format || res.Extension != Extension || len(res.Warnings) != 0 {
		t.Errorf("result %+v", res)
	}
	h, names, docs := namespacesOf(t, archive)
	if want := []string{src + ".empty", src + ".events", src + ".people"}; !slices.Equal(names, want) {
		t.Errorf("namespaces %v, want %v", names, want)
	}
	if h.FormatVersion != "0.1" || h.ConcurrentCollections != 1 || h.ToolVersion != toolVersion {
		t.Errorf("header %+v", h)
	}
	if _, ok := parseVersion(h.ServerVersion); !ok {
		t.Errorf("server_version %q is not X.Y.Z: mongorestore would refuse it", h.ServerVersion)
	}
	if len(docs[src+".people"]) != 150 || len(docs[src+".events"]) != 300 || len(docs[src+".empty"]) != 0 {
		t.Errorf("documents: people %d events %d empty %d", len(docs[src+".people"]), len(docs[src+".events"]), len(docs[src+".empty"]))
	}

	// The URI's path selects the same database: the same bytes.
	again, _ := dump(t, sdk.Target{Connection: s.URI(src)})
	if !bytes.Equal(again, archive) {
		t.Error("dumping the database named in the URI path gave a different archive")
	}

	// Restore into a fresh database.
	dst := uniqueDB(t, c, "one_dst")
	p := New()
	if _, err := p.Restore(ctxT(t), sdk.Target{Connection: s.URI(""), Database: dst}, Format, bytes.NewReader(archive)); err != nil {
		t.Fatalf("restore: %v", err)
	}
	assertSameContent(t, want, snapshot(t, c, dst))

	// Again, over the restored data: duplicates fail, drop=true replaces.
	_, err := p.Restore(ctxT(t), sdk.Target{Connection: s.URI(""), Database: dst}, Format, bytes.NewReader(archive))
	if err == nil || !strings.Contains(err.Error(), "drop=true") {
		t.Errorf("second restore without drop: %v", err)
	}
	if _, err := c.Database(dst).Collection("events").InsertOne(ctxT(t), bson.D{{Key: "_id", Value: "extra"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Restore(ctxT(t), sdk.Target{Connection: s.URI(""), Database: dst, Options: map[string]string{OptionDrop: "true"}}, Format, bytes.NewReader(archive)); err != nil {
		t.Fatalf("restore with drop: %v", err)
	}
	assertSameContent(t, want, snapshot(t, c, dst))

	// A broken archive with drop=true: a collection is dropped only when
	// the archive reaches it, so those after the break stay untouched.
	if _, err := c.Database(dst).Collection("people").InsertOne(ctxT(t), bson.D{{Key: "_id", Value: "kept"}}); err != nil {
		t.Fatal(err)
	}
	cut := bytes.Index(archive, []byte("click")) // inside events, before people
	_, err = p.Restore(ctxT(t), sdk.Target{Connection: s.URI(""), Database: dst, Options: map[string]string{OptionDrop: "true"}}, Format, bytes.NewReader(archive[:cut]))
	if !errors.Is(err, sdk.ErrIntegrity) {
		t.Fatalf("truncated restore: %v", err)
	}
	if n, _ := c.Database(dst).Collection("people").CountDocuments(ctxT(t), bson.D{{Key: "_id", Value: "kept"}}); n != 1 {
		t.Error("a collection after the break was dropped")
	}
}

func TestDumpAllDatabases(t *testing.T) {
	s := testServer(t)
	c := testClient(t, s)
	db1 := uniqueDB(t, c, "all_a")
	db2 := uniqueDB(t, c, "all_b")
	seedPeople(t, c, db1)
	seedOrders(t, c, db2)
	want2 := snapshot(t, c, db2)
	// A user collection in admin: only include_system dumps it.
	adminColl := fmt.Sprintf("lbtest_%d", time.Now().UnixNano())
	if _, err := c.Database("admin").Collection(adminColl).InsertOne(ctxT(t), bson.D{{Key: "_id", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Database("admin").Collection(adminColl).Drop(context.Background()) })

	archive, _ := dump(t, sdk.Target{Connection: s.URI("")})
	_, names, docs := namespacesOf(t, archive)
	for _, n := range []string{db1 + ".people", db1 + ".events", db1 + ".empty", db2 + ".orders"} {
		if !slices.Contains(names, n) {
			t.Errorf("all-database dump lacks %s: %v", n, names)
		}
	}
	for _, n := range names {
		if strings.HasPrefix(n, "admin.") || strings.HasPrefix(n, "local.") || strings.HasPrefix(n, "config.") {
			t.Errorf("all-database dump has system namespace %s", n)
		}
	}
	if len(docs[db2+".orders"]) != 100 {
		t.Errorf("orders: %d documents", len(docs[db2+".orders"]))
	}

	withSystem, _ := dump(t, sdk.Target{Connection: s.URI(""), Options: map[string]string{OptionIncludeSystem: "true"}})
	_, sysNames, _ := namespacesOf(t, withSystem)
	if !slices.Contains(sysNames, "admin."+adminColl) {
		t.Errorf("include_system dump lacks admin.%s: %v", adminColl, sysNames)
	}
	for _, n := range sysNames {
		if strings.Contains(n, ".system.") {
			t.Errorf("include_system dump has system collection %s", n)
		}
	}

	// A multi-database archive ignores Target.Database (with a warning)
	// and restores under the original names.
	if err := c.Database(db2).Drop(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	ignored := uniqueDB(t, c, "all_ignored")
	res, err := New().Restore(ctxT(t), sdk.Target{Connection: s.URI(""), Database: ignored, Options: map[string]string{OptionDrop: "true"}}, Format, bytes.NewReader(archive))
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "under their own names") {
		t.Errorf("warnings %q", res.Warnings)
	}
	assertSameContent(t, want2, snapshot(t, c, db2))
	if got := snapshot(t, c, ignored); len(got) != 0 {
		t.Errorf("database %s was written to: %v", ignored, got)
	}
}

func TestRestoreOriginalName(t *testing.T) {
	s := testServer(t)
	c := testClient(t, s)
	db := uniqueDB(t, c, "orig")
	seedOrders(t, c, db)
	want := snapshot(t, c, db)
	archive, _ := dump(t, sdk.Target{Connection: s.URI(db)})
	if err := c.Database(db).Drop(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	// The URI's path does not rename a restore; only Target.Database does.
	other := uniqueDB(t, c, "orig_path")
	if _, err := New().Restore(ctxT(t), sdk.Target{Connection: s.URI(other)}, "", bytes.NewReader(archive)); err != nil {
		t.Fatalf("restore: %v", err)
	}
	assertSameContent(t, want, snapshot(t, c, db))
}

func TestValidate(t *testing.T) {
	s := testServer(t)
	c := testClient(t, s)
	db := uniqueDB(t, c, "validate")
	seedOrders(t, c, db)
	port, err := fdbtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	const wrongPW = "Wr0ng-Passw0rd-XYZ"
	escaped := fdbtest.Escape(s.Password)
	tests := []struct {
		name    string
		target  sdk.Target
		wantErr error
	}{
		{"ok, all databases", sdk.Target{Connection: s.URI("")}, nil},
		{"ok, database in path", sdk.Target{Connection: s.URI(db)}, nil},
		{"ok, database override", sdk.Target{Connection: s.URI("nope"), Database: db}, nil},
		{"ok, auth db from the path", sdk.Target{Connection: fmt.Sprintf("mongodb://root:%s@127.0.0.1:%d/admin", escaped, s.Port), Database: db}, nil},
		{"missing database", sdk.Target{Connection: s.URI("no_such_db")}, sdk.ErrNotFound},
		{"missing database by override", sdk.Target{Connection: s.URI(db), Database: "no_such_db"}, sdk.ErrNotFound},
		{"wrong password", sdk.Target{Connection: fmt.Sprintf("mongodb://root:%s@127.0.0.1:%d/?authSource=admin", wrongPW, s.Port)}, sdk.ErrUnauthenticated},
		{"unknown user", sdk.Target{Connection: fmt.Sprintf("mongodb://nobody:%s@127.0.0.1:%d/?authSource=admin", escaped, s.Port)}, sdk.ErrUnauthenticated},
		// authSource is honoured: the user lives in admin, not in db.
		{"wrong authSource", sdk.Target{Connection: fmt.Sprintf("mongodb://root:%s@127.0.0.1:%d/?authSource=%s", escaped, s.Port, db)}, sdk.ErrUnauthenticated},
		{"no credentials", sdk.Target{Connection: fmt.Sprintf("mongodb://127.0.0.1:%d/", s.Port)}, sdk.ErrUnauthenticated},
		{"unreachable", sdk.Target{Connection: fmt.Sprintf("mongodb://root:%s@127.0.0.1:%d/?serverSelectionTimeoutMS=1000", escaped, port)}, sdk.ErrUnavailable},
		{"bad connection string", sdk.Target{Connection: "mongodb://root:" + wrongPW + "@127.0.0.1:x/"}, sdk.ErrInvalidArgument},
		{"bad option", sdk.Target{Connection: s.URI(""), Options: map[string]string{OptionIncludeSystem: "maybe"}}, sdk.ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			res, err := New().Validate(ctxT(t), tc.target)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if !strings.HasPrefix(res.ServerVersion, "7.0.") || !strings.Contains(res.ServerVersion, "FerretDB") {
					t.Errorf("ServerVersion %q", res.ServerVersion)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			for _, secret := range []string{s.Password, escaped, wrongPW} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error shows a password: %v", err)
				}
			}
			if d := time.Since(start); d > 15*time.Second {
				t.Errorf("took %v", d)
			}
			t.Logf("error: %v", err)
		})
	}
}

func TestDumpFailures(t *testing.T) {
	s := testServer(t)
	c := testClient(t, s)
	db := uniqueDB(t, c, "dumpfail")
	seedBulk(t, c, db, 3000, 2000) // ~6 MB: several SDK chunks
	const wrongPW = "Wr0ng-Passw0rd-Dump"
	p := New()

	t.Run("missing database", func(t *testing.T) {
		_, err := p.Dump(ctxT(t), sdk.Target{Connection: s.URI(""), Database: "no_such_db"}, &bytes.Buffer{})
		if !errors.Is(err, sdk.ErrNotFound) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		_, err := p.Dump(ctxT(t), sdk.Target{Connection: fmt.Sprintf("mongodb://root:%s@127.0.0.1:%d/%s?authSource=admin", wrongPW, s.Port, db)}, &bytes.Buffer{})
		if !errors.Is(err, sdk.ErrUnauthenticated) || strings.Contains(err.Error(), wrongPW) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("writer fails", func(t *testing.T) {
		boom := errors.New("disk full")
		_, err := p.Dump(ctxT(t), sdk.Target{Connection: s.URI(db)}, failWriter{boom})
		if !errors.Is(err, boom) {
			t.Fatalf("err = %v, want the writer's error", err)
		}
	})
	t.Run("cancel mid-dump", func(t *testing.T) {
		ctx, cancel := context.WithCancel(ctxT(t))
		defer cancel()
		var written atomic.Int64
		start := time.Now()
		_, err := p.Dump(ctx, sdk.Target{Connection: s.URI(db)}, writerFunc(func(b []byte) (int, error) {
			written.Add(int64(len(b)))
			cancel()
			return len(b), nil
		}))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("cancelled dump took %v", d)
		}
		if n := written.Load(); n > 4<<20 {
			t.Errorf("%d bytes written after the cancel", n)
		}
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestRestoreFailures(t *testing.T) {
	s := testServer(t)
	c := testClient(t, s)
	src := uniqueDB(t, c, "rfail")
	seedOrders(t, c, src)
	if _, err := c.Database(src).Collection("orders").InsertOne(ctxT(t), bson.D{{Key: "_id", Value: "marker"}, {Key: "text", Value: "corrupt-me-marker"}}); err != nil {
		t.Fatal(err)
	}
	archive, _ := dump(t, sdk.Target{Connection: s.URI(src)})
	i := bytes.Index(archive, []byte("corrupt-me-marker"))
	if i < 0 {
		t.Fatal("marker not in the dump")
	}
	corrupt := bytes.Clone(archive)
	corrupt[i] = 'C' // still valid BSON: only the CRC can tell

	p := New()
	const wrongPW = "Wr0ng-Passw0rd-Restore"
	tests := []struct {
		name   string
		target sdk.Target
		format string
		data   []byte
		want   error
	}{
		{"CRC mismatch", sdk.Target{Connection: s.URI("")}, Format, corrupt, sdk.ErrIntegrity},
		{"truncated", sdk.Target{Connection: s.URI("")}, Format, archive[:len(archive)-10], sdk.ErrIntegrity},
		{"not an archive", sdk.Target{Connection: s.URI("")}, Format, []byte("PGDMP not mongo"), sdk.ErrInvalidArgument},
		{"unknown format", sdk.Target{Connection: s.URI("")}, "pg_dump-custom", archive, sdk.ErrInvalidArgument},
		{"wrong password", sdk.Target{Connection: fmt.Sprintf("mongodb://root:%s@127.0.0.1:%d/?authSource=admin", wrongPW, s.Port)}, Format, archive, sdk.ErrUnauthenticated},
		{"bad drop option", sdk.Target{Connection: s.URI(""), Options: map[string]string{OptionDrop: "perhaps"}}, Format, archive, sdk.ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := uniqueDB(t, c, "rfail_dst")
			tc.target.Database = dst
			_, err := p.Restore(ctxT(t), tc.target, tc.format, bytes.NewReader(tc.data))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if strings.Contains(err.Error(), wrongPW) || strings.Contains(err.Error(), s.Password) {
				t.Errorf("error shows a password: %v", err)
			}
			t.Logf("error: %v", err)
		})
	}
}

// TestRestoreSkipsAndViews restores a hand-made archive like mongodump's:
// a collection, a system collection, a time-series collection (its data
// under system.buckets.<name>), an oplog (no database) and a view. The
// unsupported namespaces are skipped with warnings; the view is created
// last with its definition (FerretDB 1.x cannot create views, so here its
// creation must fail naming viewOn: proof the definition reached the
// server).
func TestRestoreSkipsAndViews(t *testing.T) {
	s := testServer(t)
	c := testClient(t, s)
	d1, d2 := hdoc(hi32("_id", 1), hstr("a", "x")), hdoc(hi32("_id", 2), hstr("a", "y"))
	block := func(db, coll string, docs ...[]byte) []byte {
		parts := [][]byte{hdoc(hstr("db", db), hstr("collection", coll), hbool("EOF", false), hi64("CRC", 0))}
		parts = append(parts, docs...)
		parts = append(parts, wantTerminator,
			hdoc(hstr("db", db), hstr("collection", coll), hbool("EOF", true), hi64("CRC", refCRC64XZ(bytes.Join(docs, nil)))), wantTerminator)
		return bytes.Join(parts, nil)
	}
	meta := func(db, coll, md, typ string) []byte {
		return hdoc(hstr("db", db), hstr("collection", coll), hstr("metadata", md), hi32("size", 0), hstr("type", typ))
	}
	build := func(withView bool) []byte {
		parts := [][]byte{
			wantMagic,
			hdoc(hi32("concurrent_collections", 4), hstr("version", "0.1"), hstr("server_version", "7.0.14"), hstr("tool_version", "100.10.0")),
			meta("x", "items", `{"indexes":[{"v":{"$numberInt":"2"},"key":{"_id":{"$numberInt":"1"}},"name":"_id_"},{"v":{"$numberInt":"2"},"key":{"a":{"$numberInt":"1"}},"name":"a_1","ns":"x.items"}],"collectionName":"items","type":"collection"}`, "collection"),
			meta("x", "system.profile", `{"indexes":[],"collectionName":"system.profile"}`, ""),
			meta("x", "ts", `{"options":{"timeseries":{"timeField":"t"}},"indexes":[],"collectionName":"ts","type":"timeseries"}`, "timeseries"),
			meta("", "oplog", "", ""),
		}
		if withView {
			parts = append(parts, meta("x", "v", `{"options":{"viewOn":"items","pipeline":[]},"indexes":[],"collectionName":"v","type":"view"}`, "view"))
		}
		parts = append(parts, wantTerminator,
			block("x", "items", d1, d2), block("x", "system.profile", d1), block("x", "system.buckets.ts", d2), block("", "oplog", d1))
		if withView {
			parts = append(parts, hdoc(hstr("db", "x"), hstr("collection", "v"), hbool("EOF", true), hi64("CRC", 0)), wantTerminator)
		}
		return bytes.Join(parts, nil)
	}

	dst := uniqueDB(t, c, "skips")
	res, err := New().Restore(ctxT(t), sdk.Target{Connection: s.URI(""), Database: dst}, Format, bytes.NewReader(build(false)))
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	warnings := strings.Join(res.Warnings, "\n")
	for _, want := range []string{"system collection x.system.profile skipped", "time-series collection x.ts skipped", `"oplog" without a database`} {
		if !strings.Contains(warnings, want) {
			t.Errorf("warnings lack %q:\n%s", want, warnings)
		}
	}
	got := snapshot(t, c, dst)
	if len(got) != 1 || !strings.Contains(got["items"], `"name": "a_1"`) || strings.Count(got["items"], "\n") != 5 {
		t.Errorf("restored %v", got)
	}

	dst2 := uniqueDB(t, c, "skips_view")
	_, err = New().Restore(ctxT(t), sdk.Target{Connection: s.URI(""), Database: dst2}, Format, bytes.NewReader(build(true)))
	if err == nil || !strings.Contains(err.Error(), "creating "+dst2+".v") || !strings.Contains(err.Error(), "viewOn") {
		t.Fatalf("view restore on FerretDB: err = %v, want its create with viewOn refused", err)
	}
	if n, _ := c.Database(dst2).Collection("items").CountDocuments(ctxT(t), bson.D{}); n != 2 {
		t.Errorf("items restored before the view: %d documents", n)
	}
}
