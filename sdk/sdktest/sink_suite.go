package sdktest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/labelbackup/label-backup/sdk"
	pb "github.com/labelbackup/label-backup/sdk/internal/gen/labelbackup/plugin/v1"
)

// RunSinkSuite checks a sink against the Sink contract, through the real
// gRPC shims. newSink must return a fresh, configured, empty sink for every
// call (each subtest gets its own).
func RunSinkSuite(t *testing.T, newSink func(t *testing.T) sdk.Sink) {
	t.Helper()
	cases := []struct {
		name string
		run  func(t *testing.T, h *sinkHarness)
	}{
		{"Info", testSinkInfo},
		{"CheckReady", testSinkReady},
		{"PutGetSizes", testSinkPutGetSizes},
		{"Overwrite", testSinkOverwrite},
		{"AbortLeavesNothing", testSinkAbort},
		{"CancelMidStreamLeavesNothing", testSinkCancel},
		{"StreamWithoutTrailerLeavesNothing", testSinkNoTrailer},
		{"TrailerMismatchRejected", testSinkTrailerMismatch},
		{"LegacySHA256TrailerAccepted", testSinkLegacyTrailer},
		{"MissingObjects", testSinkMissing},
		{"InvalidKeys", testSinkInvalidKeys},
		{"ListPrefixAndPages", testSinkList},
		{"StatDelete", testSinkStatDelete},
		{"ConcurrentPuts", testSinkConcurrent},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newSink(t)
			c, conn := sinkConn(t, s)
			tc.run(t, &sinkHarness{impl: s, client: c, raw: pb.NewSinkServiceClient(conn)})
		})
	}
}

type sinkHarness struct {
	impl   sdk.Sink
	client *sdk.SinkClient
	raw    pb.SinkServiceClient
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31) ^ seed
	}
	return b
}

func (h *sinkHarness) put(t *testing.T, key string, data []byte) sdk.ObjectInfo {
	t.Helper()
	obj, err := h.client.Put(ctxT(t), sdk.PutRequest{Key: key}, bytes.NewReader(data))
	if err != nil {
		t.Fatalf("put %q (%d bytes): %v", key, len(data), err)
	}
	return obj
}

func (h *sinkHarness) get(t *testing.T, key string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := h.client.Get(ctxT(t), key, &buf); err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	return buf.Bytes()
}

// assertAbsent checks that key is neither stat-able nor listed.
func (h *sinkHarness) assertAbsent(t *testing.T, key string) {
	t.Helper()
	if _, err := h.client.Stat(ctxT(t), key); !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("stat %q after a failed upload: err = %v, want ErrNotFound", key, err)
	}
	page, err := h.client.List(ctxT(t), sdk.ListRequest{})
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	for _, o := range page.Objects {
		t.Errorf("failed upload left an object behind: %q (%d bytes)", o.Key, o.Size)
	}
}

func testSinkInfo(t *testing.T, h *sinkHarness) {
	info, err := h.client.Describe(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if info.Kind != sdk.KindSink {
		t.Errorf("kind = %q, want %q", info.Kind, sdk.KindSink)
	}
	if info.Name == "" || info.Version == "" {
		t.Errorf("name %q and version %q must be set", info.Name, info.Version)
	}
	if info.ProtocolVersion != sdk.ProtocolVersion {
		t.Errorf("protocol version = %d, want %d", info.ProtocolVersion, sdk.ProtocolVersion)
	}
}

func testSinkReady(t *testing.T, h *sinkHarness) {
	if _, err := h.client.CheckReady(ctxT(t)); err != nil {
		t.Fatalf("check ready: %v", err)
	}
}

func testSinkPutGetSizes(t *testing.T, h *sinkHarness) {
	for _, size := range []int{0, 1, 1000, sdk.DefaultChunkSize, 3*sdk.DefaultChunkSize + 12345} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			key := fmt.Sprintf("sizes/obj-%d.bin", size)
			data := pattern(size, byte(size))
			obj := h.put(t, key, data)
			sum := sha256.Sum256(data)
			if obj.Size != int64(size) || !bytes.Equal(obj.SHA256, sum[:]) {
				t.Errorf("put returned size %d sha %x, want %d %x", obj.Size, obj.SHA256, size, sum)
			}
			if got := h.get(t, key); !bytes.Equal(got, data) {
				t.Errorf("get returned %d bytes that differ from the %d put", len(got), size)
			}
			st, err := h.client.Stat(ctxT(t), key)
			if err != nil {
				t.Fatalf("stat: %v", err)
			}
			if st.Size != int64(size) || st.Key != key {
				t.Errorf("stat = %q %d bytes, want %q %d", st.Key, st.Size, key, size)
			}
		})
	}
}

func testSinkOverwrite(t *testing.T, h *sinkHarness) {
	h.put(t, "ow/obj", pattern(5000, 1))
	second := pattern(7000, 2)
	h.put(t, "ow/obj", second)
	if got := h.get(t, "ow/obj"); !bytes.Equal(got, second) {
		t.Errorf("after overwrite get returned %d bytes, want the second upload's %d", len(got), len(second))
	}
}

func testSinkAbort(t *testing.T, h *sinkHarness) {
	w, err := h.client.OpenPut(ctxT(t), sdk.PutRequest{Key: "abort/obj"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(pattern(2*sdk.DefaultChunkSize+7, 3)); err != nil {
		t.Fatal(err)
	}
	w.Abort()
	waitAbsent(t, h, "abort/obj")
}

func testSinkCancel(t *testing.T, h *sinkHarness) {
	ctx, cancel := context.WithCancel(ctxT(t))
	w, err := h.client.OpenPut(ctx, sdk.PutRequest{Key: "cancel/obj"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(pattern(sdk.DefaultChunkSize+1, 4)); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := w.Commit(); err == nil {
		t.Fatal("commit after cancel succeeded")
	}
	waitAbsent(t, h, "cancel/obj")
}

// waitAbsent gives the sink a moment to notice a cancelled stream and clean
// up, then checks nothing is visible.
func waitAbsent(t *testing.T, h *sinkHarness, key string) {
	t.Helper()
	time.Sleep(200 * time.Millisecond)
	h.assertAbsent(t, key)
}

func testSinkNoTrailer(t *testing.T, h *sinkHarness) {
	stream, err := h.raw.Put(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	send := func(m *pb.PutRequest) {
		if err := stream.Send(m); err != nil && err != io.EOF {
			t.Fatalf("send: %v", err)
		}
	}
	send(&pb.PutRequest{Msg: &pb.PutRequest_Header{Header: &pb.PutHeader{Key: "notrailer/obj"}}})
	send(&pb.PutRequest{Msg: &pb.PutRequest_Data{Data: pattern(10000, 5)}})
	// A clean half-close without a trailer: the classic truncation trap.
	if _, err := stream.CloseAndRecv(); err == nil {
		t.Error("put without a trailer succeeded")
	}
	waitAbsent(t, h, "notrailer/obj")
}

func testSinkTrailerMismatch(t *testing.T, h *sinkHarness) {
	data := pattern(5000, 6)
	good := sha256.Sum256(data)
	bad := sha256.Sum256([]byte("something else"))
	goodCRC := crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli))
	badCRC := goodCRC ^ 1
	crcCheck := pb.TrailerCheck_TRAILER_CHECK_CRC32C
	for _, tc := range []struct {
		name  string
		check pb.TrailerCheck
		tr    *pb.StreamTrailer
	}{
		{"size", 0, &pb.StreamTrailer{Size: uint64(len(data) + 1), Sha256: good[:]}},
		{"sha256", 0, &pb.StreamTrailer{Size: uint64(len(data)), Sha256: bad[:], Crc32C: &goodCRC}},
		{"size with crc32c", crcCheck, &pb.StreamTrailer{Size: uint64(len(data) - 1), Sha256: good[:], Crc32C: &goodCRC}},
		{"crc32c", crcCheck, &pb.StreamTrailer{Size: uint64(len(data)), Sha256: good[:], Crc32C: &badCRC}},
		{"crc32c announced but missing", crcCheck, &pb.StreamTrailer{Size: uint64(len(data)), Sha256: good[:]}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stream, err := h.raw.Put(ctxT(t))
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range []*pb.PutRequest{
				{Msg: &pb.PutRequest_Header{Header: &pb.PutHeader{Key: "mismatch/obj", TrailerCheck: tc.check}}},
				{Msg: &pb.PutRequest_Data{Data: data}},
				{Msg: &pb.PutRequest_Trailer{Trailer: tc.tr}},
			} {
				if err := stream.Send(m); err != nil && err != io.EOF {
					t.Fatalf("send: %v", err)
				}
			}
			_, err = stream.CloseAndRecv()
			if !errors.Is(fromRaw(err), sdk.ErrIntegrity) {
				t.Errorf("put with a wrong trailer: err = %v, want ErrIntegrity", err)
			}
			waitAbsent(t, h, "mismatch/obj")
		})
	}
}

// testSinkLegacyTrailer: a sender that predates TrailerCheck (no check in
// the header, only a sha256 in the trailer) still stores objects.
func testSinkLegacyTrailer(t *testing.T, h *sinkHarness) {
	data := pattern(300000, 8)
	sum := sha256.Sum256(data)
	stream, err := h.raw.Put(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*pb.PutRequest{
		{Msg: &pb.PutRequest_Header{Header: &pb.PutHeader{Key: "legacy/obj"}}},
		{Msg: &pb.PutRequest_Data{Data: data[:100000]}},
		{Msg: &pb.PutRequest_Data{Data: data[100000:]}},
		{Msg: &pb.PutRequest_Trailer{Trailer: &pb.StreamTrailer{Size: uint64(len(data)), Sha256: sum[:]}}},
	} {
		if err := stream.Send(m); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	res, err := stream.CloseAndRecv()
	if err != nil {
		t.Fatalf("legacy put: %v", err)
	}
	if res.GetObject().GetSize() != uint64(len(data)) {
		t.Errorf("stored size %d, want %d", res.GetObject().GetSize(), len(data))
	}
	var got bytes.Buffer
	if err := h.client.Get(ctxT(t), "legacy/obj", &got); err != nil || !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("get: %d bytes, err %v", got.Len(), err)
	}
	if err := h.client.Delete(ctxT(t), "legacy/obj"); err != nil {
		t.Fatal(err)
	}
}

func testSinkMissing(t *testing.T, h *sinkHarness) {
	ctx := ctxT(t)
	if _, err := h.client.Stat(ctx, "missing/obj"); !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("stat missing: err = %v, want ErrNotFound", err)
	}
	if err := h.client.Get(ctx, "missing/obj", io.Discard); !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("get missing: err = %v, want ErrNotFound", err)
	}
	if err := h.client.Delete(ctx, "missing/obj"); !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("delete missing: err = %v, want ErrNotFound", err)
	}
}

func testSinkInvalidKeys(t *testing.T, h *sinkHarness) {
	for _, key := range []string{"", "/abs/path", "../escape", "a/../../escape", "a/./b", "a//b", "..", "dir/"} {
		t.Run(fmt.Sprintf("%q", key), func(t *testing.T) {
			_, err := h.client.Put(ctxT(t), sdk.PutRequest{Key: key}, bytes.NewReader([]byte("x")))
			if !errors.Is(err, sdk.ErrInvalidArgument) {
				t.Errorf("put %q: err = %v, want ErrInvalidArgument", key, err)
			}
			if _, err := h.client.Stat(ctxT(t), key); !errors.Is(err, sdk.ErrInvalidArgument) {
				t.Errorf("stat %q: err = %v, want ErrInvalidArgument", key, err)
			}
		})
	}
}

func testSinkList(t *testing.T, h *sinkHarness) {
	keys := []string{"app/a1", "app/a2", "app/sub/a3", "application/b1", "apple", "zzz/c1"}
	for i, k := range keys {
		h.put(t, k, pattern(10+i, byte(i)))
	}
	all := h.listAll(t, "app/", 2)
	want := []string{"app/a1", "app/a2", "app/sub/a3"}
	if fmt.Sprint(all) != fmt.Sprint(want) {
		t.Errorf("list %q = %v, want %v (in lexical order)", "app/", all, want)
	}
	if got := h.listAll(t, "app", 1000); len(got) != 5 {
		t.Errorf("list %q = %v, want the 5 keys starting with it", "app", got)
	}
	if got := h.listAll(t, "", 4); len(got) != len(keys) {
		t.Errorf("list all = %v, want %d keys", got, len(keys))
	}
	if got := h.listAll(t, "nothing/", 10); len(got) != 0 {
		t.Errorf("list of an empty prefix = %v, want none", got)
	}
}

func (h *sinkHarness) listAll(t *testing.T, prefix string, pageSize int) []string {
	t.Helper()
	var keys []string
	token := ""
	for range 1000 {
		page, err := h.client.List(ctxT(t), sdk.ListRequest{Prefix: prefix, PageToken: token, PageSize: pageSize})
		if err != nil {
			t.Fatalf("list %q: %v", prefix, err)
		}
		if len(page.Objects) > pageSize {
			t.Errorf("page of %d objects exceeds page size %d", len(page.Objects), pageSize)
		}
		for _, o := range page.Objects {
			keys = append(keys, o.Key)
		}
		if page.NextPageToken == "" {
			return keys
		}
		token = page.NextPageToken
	}
	t.Fatal("listing never ended")
	return nil
}

func testSinkStatDelete(t *testing.T, h *sinkHarness) {
	data := pattern(4321, 9)
	h.put(t, "del/obj", data)
	h.put(t, "del/keep", data)
	st, err := h.client.Stat(ctxT(t), "del/obj")
	if err != nil {
		t.Fatal(err)
	}
	if st.Size != int64(len(data)) || st.Modified.IsZero() {
		t.Errorf("stat = %d bytes, modified %v; want %d and a time", st.Size, st.Modified, len(data))
	}
	if err := h.client.Delete(ctxT(t), "del/obj"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := h.client.Stat(ctxT(t), "del/obj"); !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("stat after delete: err = %v, want ErrNotFound", err)
	}
	if got := h.get(t, "del/keep"); !bytes.Equal(got, data) {
		t.Error("deleting one object disturbed its neighbour")
	}
}

func testSinkConcurrent(t *testing.T, h *sinkHarness) {
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := pattern(sdk.DefaultChunkSize/2+i*1000, byte(i))
			key := fmt.Sprintf("conc/obj-%d", i)
			if _, err := h.client.Put(ctxT(t), sdk.PutRequest{Key: key}, bytes.NewReader(data)); err != nil {
				errs <- fmt.Errorf("put %s: %w", key, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i := range n {
		want := pattern(sdk.DefaultChunkSize/2+i*1000, byte(i))
		if got := h.get(t, fmt.Sprintf("conc/obj-%d", i)); !bytes.Equal(got, want) {
			t.Errorf("object %d: concurrent puts mixed up data", i)
		}
	}
}
