package mongodb

// This file writes the mongodump archive format, as published in
// mongo-tools' common/archive/spec.md:
//
//	archive            = magic-number, header, *collection-metadata, terminator,
//	                     *(namespace-segment | namespace-eof)
//	magic-number       = 0x8199e26d, little-endian (bytes 6d e2 99 81)
//	namespace-segment  = namespace-header, +document, terminator
//	namespace-eof      = eof-header, terminator
//	terminator         = 0xffffffff
//
// Every header is a BSON document. A namespace header is
// {db, collection, EOF: false, CRC: int64 0}; the EOF header carries EOF:
// true and the CRC-64 (Go's hash/crc64 with the ECMA table, i.e.
// CRC-64/XZ) of the raw bytes of every document of the namespace. The
// implementation here is written from that specification alone.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc64"
	"io"

	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

const (
	// archiveMagic starts every archive, stored little-endian.
	archiveMagic uint32 = 0x8199e26d
	// archiveTerminator ends the prelude and every block of documents.
	archiveTerminator uint32 = 0xffffffff
	// archiveFormatVersion is the only version the specification defines.
	archiveFormatVersion = "0.1"
	// minBSONSize is an empty document: a length and a NUL.
	minBSONSize = 5
	// maxBSONSize is the largest document mongorestore's archive parser
	// accepts (16 MiB); MongoDB never stores larger user documents.
	maxBSONSize = 16 << 20
)

// crcTable is the table mongodump hashes namespaces with. Go's crc64
// package with the ECMA polynomial computes CRC-64/XZ (reflected, initial
// value and final XOR all ones): check value 0x995dc9bbdf1939fa.
var crcTable = crc64.MakeTable(crc64.ECMA)

func newCRC() hash.Hash64 { return crc64.New(crcTable) }

// archiveHeader is the document that follows the magic number.
type archiveHeader struct {
	ConcurrentCollections int32
	FormatVersion         string
	ServerVersion         string
	ToolVersion           string
}

func (h archiveHeader) marshal() []byte {
	return bsoncore.NewDocumentBuilder().
		AppendInt32("concurrent_collections", h.ConcurrentCollections).
		AppendString("version", h.FormatVersion).
		AppendString("server_version", h.ServerVersion).
		AppendString("tool_version", h.ToolVersion).
		Build()
}

// collectionMetadata is one prelude entry: a collection or view, its
// metadata (options and indexes) as canonical Extended JSON v2, the size
// field (mongodump itself always writes 0) and the type: "" for
// collections, "view" or "timeseries".
type collectionMetadata struct {
	DB         string
	Collection string
	Metadata   string
	Size       int64
	Type       string
}

func (m collectionMetadata) marshal() []byte {
	b := bsoncore.NewDocumentBuilder().
		AppendString("db", m.DB).
		AppendString("collection", m.Collection).
		AppendString("metadata", m.Metadata)
	if m.Size >= -1<<31 && m.Size < 1<<31 {
		b.AppendInt32("size", int32(m.Size))
	} else {
		b.AppendInt64("size", m.Size)
	}
	return b.AppendString("type", m.Type).Build()
}

// namespaceHeader opens a segment of a namespace's documents or, with EOF,
// closes the namespace.
type namespaceHeader struct {
	DB         string
	Collection string
	EOF        bool
	CRC        uint64
}

func (h namespaceHeader) marshal() []byte {
	return bsoncore.NewDocumentBuilder().
		AppendString("db", h.DB).
		AppendString("collection", h.Collection).
		AppendBoolean("EOF", h.EOF).
		AppendInt64("CRC", int64(h.CRC)). // the CRC's 64 bits, as BSON has no unsigned type
		Build()
}

func ns(db, coll string) string { return db + "." + coll }

// archiveWriter writes one archive, one namespace at a time: the prelude,
// then for each namespace Begin, its documents, End. It checks the
// sequence so it can only produce archives mongorestore accepts: every
// namespace declared in the prelude, each written once and closed by its
// EOF block. It does not buffer: wrap w in a bufio.Writer.
type archiveWriter struct {
	w        io.Writer
	declared map[string]bool // namespace -> already written
	prelude  bool

	cur       *namespaceHeader // namespace being written, nil between
	inSegment bool             // the current namespace's header is out
	crc       hash.Hash64
	docs      int64
	bytes     int64
	err       error
}

func newArchiveWriter(w io.Writer) *archiveWriter {
	return &archiveWriter{w: w, declared: map[string]bool{}, crc: newCRC()}
}

var terminatorBytes = binary.LittleEndian.AppendUint32(nil, archiveTerminator)

func (a *archiveWriter) write(p []byte) error {
	if a.err != nil {
		return a.err
	}
	if _, err := a.w.Write(p); err != nil {
		a.err = &writeError{err: err}
		return a.err
	}
	return nil
}

// writeError is a failure of the archive's destination (as opposed to the
// database): it wraps the writer's own error.
type writeError struct{ err error }

func (e *writeError) Error() string { return "writing the archive: " + e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// WritePrelude writes the magic number, header, one metadata document per
// namespace and the terminator.
func (a *archiveWriter) WritePrelude(h archiveHeader, metas []collectionMetadata) error {
	if a.prelude {
		return errors.New("archive prelude written twice")
	}
	a.prelude = true
	for _, m := range metas {
		key := ns(m.DB, m.Collection)
		if _, dup := a.declared[key]; dup {
			return fmt.Errorf("namespace %q declared twice", key)
		}
		a.declared[key] = false
	}
	if err := a.write(binary.LittleEndian.AppendUint32(nil, archiveMagic)); err != nil {
		return err
	}
	if err := a.write(h.marshal()); err != nil {
		return err
	}
	for _, m := range metas {
		if err := a.write(m.marshal()); err != nil {
			return err
		}
	}
	return a.write(terminatorBytes)
}

// Begin starts the namespace db.coll, which the prelude must declare.
func (a *archiveWriter) Begin(db, coll string) error {
	switch key := ns(db, coll); {
	case !a.prelude:
		return errors.New("archive namespace begun before the prelude")
	case a.cur != nil:
		return fmt.Errorf("archive namespace %q begun inside %q", key, ns(a.cur.DB, a.cur.Collection))
	default:
		done, ok := a.declared[key]
		if !ok {
			return fmt.Errorf("archive namespace %q is not in the prelude", key)
		}
		if done {
			return fmt.Errorf("archive namespace %q written twice", key)
		}
	}
	a.cur = &namespaceHeader{DB: db, Collection: coll}
	a.inSegment = false
	a.crc.Reset()
	a.docs, a.bytes = 0, 0
	return nil
}

// WriteDocument appends one raw BSON document to the current namespace.
// The namespace header is written before the first document, so an empty
// namespace is only an EOF block, as mongodump writes it.
func (a *archiveWriter) WriteDocument(doc []byte) error {
	if a.cur == nil {
		return errors.New("archive document outside a namespace")
	}
	if err := checkDocument(doc); err != nil {
		return fmt.Errorf("document %d of %q: %w", a.docs+1, ns(a.cur.DB, a.cur.Collection), err)
	}
	if !a.inSegment {
		if err := a.write(a.cur.marshal()); err != nil {
			return err
		}
		a.inSegment = true
	}
	if err := a.write(doc); err != nil {
		return err
	}
	a.crc.Write(doc)
	a.docs++
	a.bytes += int64(len(doc))
	return nil
}

// End closes the current namespace: the open segment's terminator, then
// the EOF header with the namespace's CRC and its terminator.
func (a *archiveWriter) End() (docs, bytes int64, err error) {
	if a.cur == nil {
		return 0, 0, errors.New("archive namespace ended twice")
	}
	if a.inSegment {
		if err := a.write(terminatorBytes); err != nil {
			return 0, 0, err
		}
	}
	eof := namespaceHeader{DB: a.cur.DB, Collection: a.cur.Collection, EOF: true, CRC: a.crc.Sum64()}
	if err := a.write(eof.marshal()); err != nil {
		return 0, 0, err
	}
	if err := a.write(terminatorBytes); err != nil {
		return 0, 0, err
	}
	a.declared[ns(a.cur.DB, a.cur.Collection)] = true
	a.cur = nil
	return a.docs, a.bytes, nil
}

// Close checks that every declared namespace was written. It writes
// nothing: the archive simply ends.
func (a *archiveWriter) Close() error {
	if a.err != nil {
		return a.err
	}
	if !a.prelude {
		return errors.New("archive has no prelude")
	}
	if a.cur != nil {
		return fmt.Errorf("archive namespace %q not ended", ns(a.cur.DB, a.cur.Collection))
	}
	for key, done := range a.declared {
		if !done {
			return fmt.Errorf("archive namespace %q declared but never written", key)
		}
	}
	return nil
}

// checkDocument checks the framing of a raw BSON document: its length
// prefix matches, it ends with a NUL, it is within the archive limits.
func checkDocument(doc []byte) error {
	if len(doc) < minBSONSize {
		return fmt.Errorf("BSON document of %d bytes is too short", len(doc))
	}
	if n := binary.LittleEndian.Uint32(doc); int64(n) != int64(len(doc)) {
		return fmt.Errorf("BSON length prefix %d does not match its %d bytes", n, len(doc))
	}
	if len(doc) > maxBSONSize {
		return fmt.Errorf("BSON document of %d bytes exceeds %d", len(doc), maxBSONSize)
	}
	if doc[len(doc)-1] != 0 {
		return errors.New("BSON document does not end with a NUL byte")
	}
	return nil
}
