package mongodb

import (
	"context"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"

	"github.com/labelbackup/label-backup/sdk"
)

// benchDB is ~100 MB of documents, seeded once per benchmark run.
var (
	benchOnce sync.Once
	benchName string
)

func benchDatabase(b *testing.B) string {
	s := testServer(b)
	benchOnce.Do(func() {
		c, err := s.Client()
		if err != nil {
			b.Fatal(err)
		}
		defer c.Disconnect(context.Background())
		benchName = "bench_dump"
		_ = c.Database(benchName).Drop(context.Background())
		start := time.Now()
		seedBulk(b, c, benchName, 100_000, 1000) // 100k documents of ~1 KB
		b.Logf("seeded ~100 MB in %v", time.Since(start).Round(time.Millisecond))
	})
	return benchName
}

type countingWriter struct{ n atomic.Int64 }

func (c *countingWriter) Write(p []byte) (int, error) { c.n.Add(int64(len(p))); return len(p), nil }

// BenchmarkDump dumps ~100 MB from FerretDB to a counting writer.
// Run: go test -run '^$' -bench Dump -benchtime 3x
func BenchmarkDump(b *testing.B) {
	s := testServer(b)
	db := benchDatabase(b)
	b.ReportAllocs()
	b.ResetTimer()
	var peak uint64
	for b.Loop() {
		var w countingWriter
		stop := samplePeakHeap(&peak)
		if _, err := New().Dump(context.Background(), sdk.Target{Connection: s.URI(db)}, &w); err != nil {
			b.Fatal(err)
		}
		stop()
		b.SetBytes(w.n.Load())
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}

// BenchmarkFindBaseline reads the same collection with the driver and
// does nothing with the documents: the server's and driver's share.
func BenchmarkFindBaseline(b *testing.B) {
	s := testServer(b)
	db := benchDatabase(b)
	c := testClient(b, s)
	b.ResetTimer()
	for b.Loop() {
		cur, err := c.Database(db).Collection("bulk").Find(context.Background(), bson.D{})
		if err != nil {
			b.Fatal(err)
		}
		var n int64
		for cur.Next(context.Background()) {
			n += int64(len(cur.Current))
		}
		if err := cur.Err(); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(n)
	}
}

// BenchmarkArchiveWriter is the archive writer alone, in memory.
func BenchmarkArchiveWriter(b *testing.B) {
	doc := bsoncore.NewDocumentBuilder().AppendInt32("_id", 1).AppendString("pad", string(make([]byte, 1000))).Build()
	b.SetBytes(int64(len(doc)) * 10000)
	for b.Loop() {
		aw := newArchiveWriter(io.Discard)
		if err := aw.WritePrelude(archiveHeader{}, []collectionMetadata{{DB: "d", Collection: "c"}}); err != nil {
			b.Fatal(err)
		}
		_ = aw.Begin("d", "c")
		for range 10000 {
			if err := aw.WriteDocument(doc); err != nil {
				b.Fatal(err)
			}
		}
		if _, _, err := aw.End(); err != nil {
			b.Fatal(err)
		}
	}
}

// samplePeakHeap records the largest HeapInuse seen until stop is called.
func samplePeakHeap(peak *uint64) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > *peak {
				*peak = ms.HeapInuse
			}
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}
