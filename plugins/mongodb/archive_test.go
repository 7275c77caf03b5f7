package mongodb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"math"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"

	"github.com/labelbackup/label-backup/sdk"
)

// Hand-made BSON (bsonspec.org), independent of the driver, to build the
// bytes the published archive format prescribes.

func hdoc(elems ...[]byte) []byte {
	body := bytes.Join(elems, nil)
	out := binary.LittleEndian.AppendUint32(nil, uint32(4+len(body)+1))
	out = append(out, body...)
	return append(out, 0x00)
}

func hkey(typ byte, key string) []byte { return append(append([]byte{typ}, key...), 0x00) }

func hstr(key, v string) []byte {
	out := hkey(0x02, key)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(v)+1))
	return append(append(out, v...), 0x00)
}

func hi32(key string, v int32) []byte {
	return binary.LittleEndian.AppendUint32(hkey(0x10, key), uint32(v))
}

func hi64(key string, v uint64) []byte { return binary.LittleEndian.AppendUint64(hkey(0x12, key), v) }

func hbool(key string, v bool) []byte {
	b := byte(0)
	if v {
		b = 1
	}
	return append(hkey(0x08, key), b)
}

func hf64(key string, v float64) []byte {
	return binary.LittleEndian.AppendUint64(hkey(0x01, key), math.Float64bits(v))
}

func hsub(key string, doc []byte) []byte { return append(hkey(0x03, key), doc...) }

var (
	// The magic number 0x8199e26d, little-endian, as the spec writes it.
	wantMagic      = []byte{0x6d, 0xe2, 0x99, 0x81}
	wantTerminator = []byte{0xff, 0xff, 0xff, 0xff}
)

// refCRC64XZ is a bit-at-a-time CRC-64/XZ (also called CRC-64/GO-ECMA):
// the ECMA-182 polynomial 0x42F0E1EBA9EA3693 reflected (0xC96C5795D7870F42),
// initial value and final XOR all ones. It is written from the CRC
// catalogue's parameters, not from hash/crc64.
func refCRC64XZ(data []byte) uint64 {
	const poly = 0xC96C5795D7870F42
	crc := ^uint64(0)
	for _, b := range data {
		crc ^= uint64(b)
		for range 8 {
			if crc&1 == 1 {
				crc = crc>>1 ^ poly
			} else {
				crc >>= 1
			}
		}
	}
	return ^crc
}

// TestCRC64Variant pins the CRC variant: mongodump hashes with Go's
// hash/crc64 and the ECMA table, which is CRC-64/XZ (check value
// 0x995dc9bbdf1939fa), not the non-reflected CRC-64/ECMA-182
// (0x6c40df5f0b497347).
func TestCRC64Variant(t *testing.T) {
	check := []byte("123456789")
	if got := crc64.Checksum(check, crcTable); got != 0x995DC9BBDF1939FA {
		t.Fatalf("hash/crc64 ECMA check value = %#x, want CRC-64/XZ's 0x995dc9bbdf1939fa", got)
	}
	if got := refCRC64XZ(check); got != 0x995DC9BBDF1939FA {
		t.Fatalf("reference CRC-64/XZ check value = %#x", got)
	}
	h := newCRC()
	h.Write(check[:4])
	h.Write(check[4:])
	if h.Sum64() != 0x995DC9BBDF1939FA || h.Sum64() == 0x6C40DF5F0B497347 {
		t.Fatalf("incremental CRC = %#x", h.Sum64())
	}
	if newCRC().Sum64() != 0 {
		t.Fatal("the CRC of nothing must be 0 (an empty namespace's EOF CRC)")
	}
	for n := range 300 {
		data := bytes.Repeat([]byte{byte(n), byte(n * 7), 0xA5}, n)
		if got, want := crc64.Checksum(data, crcTable), refCRC64XZ(data); got != want {
			t.Fatalf("len %d: crc64 %#x, reference %#x", len(data), got, want)
		}
	}
}

// TestArchiveWriterBytes checks the writer byte for byte against an
// archive assembled by hand from the published specification: a database
// with a collection of two documents, an empty collection and a view.
func TestArchiveWriterBytes(t *testing.T) {
	doc1 := hdoc(hi32("_id", 1), hstr("name", "apple"), hf64("price", 1.25))
	doc2 := hdoc(hi32("_id", 2), hstr("name", "pear"), hsub("tags", hdoc(hstr("0", "green"))))
	const (
		metaEmpty = `{"indexes":[],"collectionName":"empty"}`
		metaItems = `{"indexes":[{"v":{"$numberInt":"2"},"key":{"_id":{"$numberInt":"1"}},"name":"_id_"}],"collectionName":"items","type":"collection"}`
		metaView  = `{"options":{"viewOn":"items","pipeline":[]},"indexes":[],"collectionName":"v","type":"view"}`
	)

	var got bytes.Buffer
	aw := newArchiveWriter(&got)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(aw.WritePrelude(
		archiveHeader{ConcurrentCollections: 1, FormatVersion: "0.1", ServerVersion: "7.0.42", ToolVersion: "lb 0.1.0"},
		[]collectionMetadata{
			{DB: "shop", Collection: "empty", Metadata: metaEmpty},
			{DB: "shop", Collection: "items", Metadata: metaItems},
			{DB: "shop", Collection: "v", Metadata: metaView, Type: "view"},
		}))
	must(aw.Begin("shop", "empty"))
	if docs, n, err := aw.End(); err != nil || docs != 0 || n != 0 {
		t.Fatalf("End(empty) = %d, %d, %v", docs, n, err)
	}
	must(aw.Begin("shop", "items"))
	must(aw.WriteDocument(doc1))
	must(aw.WriteDocument(doc2))
	if docs, n, err := aw.End(); err != nil || docs != 2 || n != int64(len(doc1)+len(doc2)) {
		t.Fatalf("End(items) = %d, %d, %v", docs, n, err)
	}
	must(aw.Begin("shop", "v"))
	_, _, err := aw.End()
	must(err)
	must(aw.Close())

	crcItems := refCRC64XZ(append(append([]byte(nil), doc1...), doc2...))
	nsHeader := func(coll string, eof bool, crc uint64) []byte {
		return hdoc(hstr("db", "shop"), hstr("collection", coll), hbool("EOF", eof), hi64("CRC", crc))
	}
	meta := func(coll, md, typ string) []byte {
		return hdoc(hstr("db", "shop"), hstr("collection", coll), hstr("metadata", md), hi32("size", 0), hstr("type", typ))
	}
	want := bytes.Join([][]byte{
		wantMagic,
		hdoc(hi32("concurrent_collections", 1), hstr("version", "0.1"), hstr("server_version", "7.0.42"), hstr("tool_version", "lb 0.1.0")),
		meta("empty", metaEmpty, ""),
		meta("items", metaItems, ""),
		meta("v", metaView, "view"),
		wantTerminator,
		// An empty collection is only its EOF block, CRC 0.
		nsHeader("empty", true, 0), wantTerminator,
		// One segment: header, documents, terminator; then the EOF block.
		nsHeader("items", false, 0), doc1, doc2, wantTerminator,
		nsHeader("items", true, crcItems), wantTerminator,
		// A view has no data: only its EOF block (mongorestore creates
		// the view when that block arrives).
		nsHeader("v", true, 0), wantTerminator,
	}, nil)
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("archive differs from the specification\n got %x\nwant %x", got.Bytes(), want)
	}
	// One literal anchor, straight from the BSON spec, for the hand
	// encoder itself: {"EOF": true} is 0b000000 08 'E''O''F' 00 01 00.
	if lit := []byte{0x0b, 0, 0, 0, 0x08, 'E', 'O', 'F', 0, 1, 0}; !bytes.Equal(hdoc(hbool("EOF", true)), lit) {
		t.Fatalf("hand encoder: %x", hdoc(hbool("EOF", true)))
	}
	if crcItems == 0 {
		t.Fatal("CRC of two documents is 0")
	}
}

// TestArchiveWriterLargeCRC writes a CRC with the top bit set: it must be
// stored as the int64 with the same 64 bits.
func TestArchiveWriterLargeCRC(t *testing.T) {
	h := namespaceHeader{DB: "d", Collection: "c", EOF: true, CRC: 0xFEDCBA9876543210}
	if got, want := h.marshal(), hdoc(hstr("db", "d"), hstr("collection", "c"), hbool("EOF", true), hi64("CRC", 0xFEDCBA9876543210)); !bytes.Equal(got, want) {
		t.Fatalf("got %x\nwant %x", got, want)
	}
	back, err := parseNamespaceHeader(h.marshal())
	if err != nil || back != h {
		t.Fatalf("parsed back %+v, %v", back, err)
	}
}

func TestArchiveWriterMisuse(t *testing.T) {
	metas := []collectionMetadata{{DB: "d", Collection: "a"}, {DB: "d", Collection: "b"}}
	newW := func() *archiveWriter {
		aw := newArchiveWriter(io.Discard)
		if err := aw.WritePrelude(archiveHeader{}, metas); err != nil {
			t.Fatal(err)
		}
		return aw
	}
	if err := newArchiveWriter(io.Discard).Begin("d", "a"); err == nil {
		t.Error("Begin before the prelude succeeded")
	}
	if err := newArchiveWriter(io.Discard).WritePrelude(archiveHeader{}, append(metas, metas[0])); err == nil {
		t.Error("a namespace declared twice was accepted")
	}
	aw := newW()
	if err := aw.Begin("d", "zzz"); err == nil {
		t.Error("Begin of an undeclared namespace succeeded")
	}
	if err := aw.WriteDocument(hdoc()); err == nil {
		t.Error("a document outside a namespace was accepted")
	}
	if err := aw.Begin("d", "a"); err != nil {
		t.Fatal(err)
	}
	if err := aw.Begin("d", "b"); err == nil {
		t.Error("Begin inside another namespace succeeded")
	}
	for _, bad := range [][]byte{{1, 0, 0}, {6, 0, 0, 0, 0}, {5, 0, 0, 0, 1}} {
		if err := aw.WriteDocument(bad); err == nil {
			t.Errorf("malformed document %x accepted", bad)
		}
	}
	if _, _, err := aw.End(); err != nil {
		t.Fatal(err)
	}
	if err := aw.Begin("d", "a"); err == nil {
		t.Error("a namespace written twice")
	}
	if err := aw.Close(); err == nil {
		t.Error("Close with namespace d.b never written succeeded")
	}
}

func TestArchiveWriterStopsOnWriteError(t *testing.T) {
	boom := errors.New("disk full")
	aw := newArchiveWriter(failWriter{boom})
	err := aw.WritePrelude(archiveHeader{}, nil)
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the writer's error", err)
	}
	var we *writeError
	if !errors.As(err, &we) {
		t.Fatalf("err = %T, want a *writeError", err)
	}
	if err := aw.Close(); !errors.Is(err, boom) {
		t.Fatalf("Close after a write error: %v", err)
	}
}

type failWriter struct{ err error }

func (f failWriter) Write([]byte) (int, error) { return 0, f.err }

// roundTripDocs are documents with every BSON type, built with the driver.
func roundTripDocs(n int) [][]byte {
	oid := bson.ObjectID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	docs := [][]byte{
		bsoncore.NewDocumentBuilder().AppendObjectID("_id", oid).
			AppendDecimal128("dec", 0x3040000000000000, 12345).
			AppendMinKey("min").AppendMaxKey("max").
			AppendJavaScript("js", "function(){}").
			AppendDateTime("at", 1700000000123).
			AppendBinary("bin", 0x80, []byte{0, 1, 2}).
			AppendTimestamp("ts", 5, 6).
			AppendRegex("re", "^a", "i").
			AppendNull("nil").
			AppendDouble("nan", math.NaN()).
			AppendInt64("big", math.MinInt64).
			StartDocument("nested").AppendString("s", "Grüße 🌍\x00tail").FinishDocument().
			Build(),
	}
	for i := range n {
		docs = append(docs, bsoncore.NewDocumentBuilder().AppendInt32("_id", int32(i)).
			AppendString("pad", strings.Repeat("x", i*37)).Build())
	}
	return docs
}

// writeTestArchive writes an archive of two databases.
func writeTestArchive(t *testing.T, n int) ([]byte, map[string][][]byte) {
	t.Helper()
	content := map[string][][]byte{
		"a.types": roundTripDocs(n),
		"a.empty": nil,
		"b.more":  roundTripDocs(n)[1:],
	}
	metas := []collectionMetadata{
		{DB: "a", Collection: "empty", Metadata: `{"indexes":[],"collectionName":"empty"}`},
		{DB: "a", Collection: "types", Metadata: `{"indexes":[],"collectionName":"types"}`},
		{DB: "b", Collection: "more", Metadata: `{"indexes":[],"collectionName":"more"}`},
	}
	var buf bytes.Buffer
	aw := newArchiveWriter(&buf)
	if err := aw.WritePrelude(archiveHeader{ConcurrentCollections: 1, FormatVersion: "0.1", ServerVersion: "8.0.1", ToolVersion: "t"}, metas); err != nil {
		t.Fatal(err)
	}
	for _, m := range metas {
		if err := aw.Begin(m.DB, m.Collection); err != nil {
			t.Fatal(err)
		}
		for _, d := range content[ns(m.DB, m.Collection)] {
			if err := aw.WriteDocument(d); err != nil {
				t.Fatal(err)
			}
		}
		if _, _, err := aw.End(); err != nil {
			t.Fatal(err)
		}
	}
	if err := aw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), content
}

// collect reads an archive and returns what the visitor saw.
func collect(r io.Reader) (archiveHeader, []collectionMetadata, map[string][][]byte, []string, error) {
	var (
		header archiveHeader
		metas  []collectionMetadata
		docs   = map[string][][]byte{}
		ends   []string
	)
	err := readArchive(r, archiveVisitor{
		Prelude: func(h archiveHeader, m []collectionMetadata) error {
			header, metas = h, m
			return nil
		},
		Document: func(m *collectionMetadata, doc []byte) error {
			key := ns(m.DB, m.Collection)
			docs[key] = append(docs[key], bytes.Clone(doc))
			return nil
		},
		End: func(m *collectionMetadata, n int64) error {
			ends = append(ends, fmt.Sprintf("%s:%d", ns(m.DB, m.Collection), n))
			return nil
		},
	})
	return header, metas, docs, ends, err
}

func TestArchiveRoundTrip(t *testing.T) {
	data, content := writeTestArchive(t, 50)
	header, metas, docs, ends, err := collect(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if header != (archiveHeader{ConcurrentCollections: 1, FormatVersion: "0.1", ServerVersion: "8.0.1", ToolVersion: "t"}) {
		t.Errorf("header %+v", header)
	}
	if len(metas) != 3 || metas[1].Collection != "types" || metas[1].Metadata != `{"indexes":[],"collectionName":"types"}` {
		t.Errorf("metas %+v", metas)
	}
	for key, want := range content {
		if got := docs[key]; len(got) != len(want) {
			t.Errorf("%s: %d documents, want %d", key, len(got), len(want))
		} else {
			for i := range want {
				if !bytes.Equal(got[i], want[i]) {
					t.Errorf("%s document %d differs", key, i)
				}
			}
		}
	}
	if got := strings.Join(ends, " "); got != "a.empty:0 a.types:51 b.more:50" {
		t.Errorf("ends %s", got)
	}
}

// TestArchiveReaderInterleaved reads what mongodump writes when it dumps
// collections in parallel: segments of two namespaces interleaved, each
// namespace's CRC covering all its segments.
func TestArchiveReaderInterleaved(t *testing.T) {
	d := func(i int32) []byte { return hdoc(hi32("_id", i)) }
	seg := func(coll string, docs ...[]byte) []byte {
		return bytes.Join(append([][]byte{hdoc(hstr("db", "x"), hstr("collection", coll), hbool("EOF", false), hi64("CRC", 0))}, append(docs, wantTerminator)...), nil)
	}
	eof := func(coll string, docs ...[]byte) []byte {
		return append(hdoc(hstr("db", "x"), hstr("collection", coll), hbool("EOF", true), hi64("CRC", refCRC64XZ(bytes.Join(docs, nil)))), wantTerminator...)
	}
	meta := func(coll string) []byte {
		return hdoc(hstr("db", "x"), hstr("collection", coll), hstr("metadata", ""), hi32("size", 0), hstr("type", ""))
	}
	archive := bytes.Join([][]byte{
		wantMagic,
		hdoc(hi32("concurrent_collections", 4), hstr("version", "0.1"), hstr("server_version", "6.0.3"), hstr("tool_version", "100.9.4")),
		meta("p"), meta("q"), wantTerminator,
		seg("p", d(1), d(2)), seg("q", d(10)), seg("p", d(3)),
		eof("q", d(10)),
		seg("p", d(4)),
		eof("p", d(1), d(2), d(3), d(4)),
	}, nil)
	_, _, docs, ends, err := collect(bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	if len(docs["x.p"]) != 4 || len(docs["x.q"]) != 1 || strings.Join(ends, " ") != "x.q:1 x.p:4" {
		t.Errorf("docs p=%d q=%d, ends %v", len(docs["x.p"]), len(docs["x.q"]), ends)
	}
}

// TestArchiveReaderTimeSeries: mongodump (server < 8.3) puts a time-series
// collection's data under system.buckets.<name>.
func TestArchiveReaderTimeSeries(t *testing.T) {
	doc := hdoc(hi32("_id", 1))
	build := func(serverVersion, dataColl string) []byte {
		return bytes.Join([][]byte{
			wantMagic,
			hdoc(hi32("concurrent_collections", 1), hstr("version", "0.1"), hstr("server_version", serverVersion), hstr("tool_version", "x")),
			hdoc(hstr("db", "m"), hstr("collection", "ts"), hstr("metadata", ""), hi32("size", 0), hstr("type", "timeseries")),
			wantTerminator,
			hdoc(hstr("db", "m"), hstr("collection", dataColl), hbool("EOF", false), hi64("CRC", 0)), doc, wantTerminator,
			hdoc(hstr("db", "m"), hstr("collection", dataColl), hbool("EOF", true), hi64("CRC", refCRC64XZ(doc))), wantTerminator,
		}, nil)
	}
	if _, _, _, _, err := collect(bytes.NewReader(build("7.0.2", "system.buckets.ts"))); err != nil {
		t.Errorf("7.0 time-series archive: %v", err)
	}
	if _, _, _, _, err := collect(bytes.NewReader(build("8.3.0", "ts"))); err != nil {
		t.Errorf("8.3 time-series archive: %v", err)
	}
	if _, _, _, _, err := collect(bytes.NewReader(build("7.0.2", "ts"))); !errors.Is(err, sdk.ErrIntegrity) {
		t.Errorf("7.0 time-series data under the view's name: %v", err)
	}
}

func TestArchiveReaderRejects(t *testing.T) {
	good, _ := writeTestArchive(t, 3)
	// Offsets of interesting places, found by parsing the good archive.
	firstNS := bytes.Index(good, hdoc(hstr("db", "a"), hstr("collection", "empty"), hbool("EOF", true), hi64("CRC", 0)))
	if firstNS < 0 {
		t.Fatal("no EOF block for a.empty in the archive")
	}
	marker := bytes.Index(good, []byte("Grüße"))
	replace := func(old, new []byte) []byte {
		if !bytes.Contains(good, old) {
			t.Fatalf("archive lacks %x", old)
		}
		return bytes.Replace(bytes.Clone(good), old, new, 1)
	}
	flip := func(at int) []byte {
		b := bytes.Clone(good)
		b[at] ^= 0x01
		return b
	}
	cases := []struct {
		name string
		data []byte
		want error
	}{
		{"empty stream", nil, sdk.ErrInvalidArgument},
		{"not an archive", []byte("PGDMP\x01\x0e\x00 a postgres dump"), sdk.ErrInvalidArgument},
		{"magic only", wantMagic, sdk.ErrIntegrity},
		{"document byte changed: CRC mismatch", flip(marker), sdk.ErrIntegrity},
		{"EOF CRC changed", replace(hdoc(hstr("db", "a"), hstr("collection", "empty"), hbool("EOF", true), hi64("CRC", 0)),
			hdoc(hstr("db", "a"), hstr("collection", "empty"), hbool("EOF", true), hi64("CRC", 1))), sdk.ErrIntegrity},
		{"undeclared namespace", replace([]byte("more"), []byte("mode")), sdk.ErrIntegrity},
		{"two terminators", append(bytes.Clone(good), 0xff, 0xff, 0xff, 0xff), sdk.ErrIntegrity},
		{"data after EOF", append(bytes.Clone(good), good[firstNS:firstNS+len(hdoc(hstr("db", "a"), hstr("collection", "empty"), hbool("EOF", true), hi64("CRC", 0)))+4]...), sdk.ErrIntegrity},
		{"trailing garbage", append(bytes.Clone(good), 1, 2, 3), sdk.ErrIntegrity},
		{"bad document length", append(bytes.Clone(good), 2, 0, 0, 0), sdk.ErrIntegrity},
		{"unknown namespace header field", replace([]byte("EOF\x00"), []byte("EOG\x00")), sdk.ErrIntegrity},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, _, err := collect(bytes.NewReader(tc.data))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("every truncation", func(t *testing.T) {
		for n := 0; n < len(good); n++ {
			_, _, _, _, err := collect(bytes.NewReader(good[:n]))
			if err == nil {
				t.Fatalf("archive cut at %d of %d bytes accepted", n, len(good))
			}
			if n >= 4 && !errors.Is(err, sdk.ErrIntegrity) {
				t.Fatalf("cut at %d: err = %v, want ErrIntegrity", n, err)
			}
		}
	})
	t.Run("reader error is passed on", func(t *testing.T) {
		boom := fmt.Errorf("upload broken: %w", sdk.ErrIntegrity)
		_, _, _, _, err := collect(io.MultiReader(bytes.NewReader(good[:len(good)/2]), failReader{boom}))
		if !errors.Is(err, boom) {
			t.Fatalf("err = %v, want the reader's error", err)
		}
	})
	t.Run("visitor error is returned unchanged", func(t *testing.T) {
		stop := errors.New("stop")
		err := readArchive(bytes.NewReader(good), archiveVisitor{Document: func(*collectionMetadata, []byte) error { return stop }})
		if err != stop {
			t.Fatalf("err = %v", err)
		}
	})
}

type failReader struct{ err error }

func (f failReader) Read([]byte) (int, error) { return 0, f.err }

func TestParseVersion(t *testing.T) {
	for s, ok := range map[string]bool{"7.0.42": true, "8.0.0-rc1": true, "6.0.3+enterprise": true, "7.0": false, "x.y.z": false, "": false} {
		if _, got := parseVersion(s); got != ok {
			t.Errorf("parseVersion(%q) ok = %v", s, got)
		}
	}
}
