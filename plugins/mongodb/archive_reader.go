package mongodb

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"sort"
	"strconv"
	"strings"

	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"

	"github.com/labelbackup/label-backup/sdk"
)

// archiveVisitor receives what readArchive finds, in stream order. Each
// callback may be nil.
type archiveVisitor struct {
	// Prelude receives the header and the metadata of every namespace
	// before any document.
	Prelude func(h archiveHeader, metas []collectionMetadata) error
	// Document receives one raw document of a namespace (meta is its
	// prelude entry). doc is only valid during the call.
	Document func(meta *collectionMetadata, doc []byte) error
	// End is called when a namespace's EOF block arrives and its CRC
	// matched the documents delivered.
	End func(meta *collectionMetadata, docs int64) error
}

// errArchive marks a stream that is not a well-formed archive.
func errArchive(format string, args ...any) error {
	return fmt.Errorf("mongodump archive: %s: %w", fmt.Sprintf(format, args...), sdk.ErrIntegrity)
}

// readArchive reads a whole archive from r and checks it against the
// specification: magic number, prelude, blocks framed by terminators,
// every namespace declared in the prelude, each closed exactly once by an
// EOF block whose CRC-64 matches its documents, nothing missing at the
// end. Malformed or truncated input fails with sdk.ErrIntegrity (or r's
// own error); input that is not an archive at all with
// sdk.ErrInvalidArgument. Errors from the visitor are returned unchanged.
func readArchive(r io.Reader, v archiveVisitor) error {
	ar := &archiveReader{r: bufio.NewReaderSize(r, 256<<10)}
	var magic [4]byte
	if _, err := io.ReadFull(ar.r, magic[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("mongodump archive: the stream is empty or shorter than a magic number: %w", sdk.ErrInvalidArgument)
		}
		return fmt.Errorf("mongodump archive: reading: %w", err)
	}
	if m := binary.LittleEndian.Uint32(magic[:]); m != archiveMagic {
		return fmt.Errorf("mongodump archive: magic number %#08x, want %#08x: the stream is not a mongodump archive: %w", m, archiveMagic, sdk.ErrInvalidArgument)
	}

	doc, term, err := ar.next()
	if err != nil {
		return ar.fail("the header", err)
	}
	if term {
		return errArchive("a terminator where the header belongs")
	}
	header, err := parseArchiveHeader(doc)
	if err != nil {
		return err
	}
	var metas []collectionMetadata
	for {
		doc, term, err := ar.next()
		if err != nil {
			return ar.fail("the prelude", err)
		}
		if term {
			break
		}
		m, err := parseCollectionMetadata(doc)
		if err != nil {
			return err
		}
		metas = append(metas, m)
	}

	// The namespaces whose data the archive must carry.
	type nsState struct {
		meta   *collectionMetadata
		closed bool
		docs   int64
		// crc covers every document of the namespace, across segments.
		crc hash.Hash64
	}
	states := map[string]*nsState{}
	for i := range metas {
		key := ns(metas[i].DB, dataNamespaceCollection(header.ServerVersion, metas[i]))
		if states[key] != nil {
			return errArchive("namespace %q declared twice in the prelude", key)
		}
		states[key] = &nsState{meta: &metas[i], crc: newCRC()}
	}
	if v.Prelude != nil {
		if err := v.Prelude(header, metas); err != nil {
			return err
		}
	}

	for {
		doc, term, err := ar.next()
		if errors.Is(err, io.EOF) {
			break // a clean end, between blocks
		}
		if err != nil {
			return ar.fail("a namespace header", err)
		}
		if term {
			return errArchive("two terminators in a row")
		}
		h, err := parseNamespaceHeader(doc)
		if err != nil {
			return err
		}
		key := ns(h.DB, h.Collection)
		st := states[key]
		switch {
		case st == nil:
			return errArchive("data for namespace %q, which the prelude does not declare", key)
		case st.closed:
			return errArchive("data for namespace %q after its EOF block", key)
		}
		if h.EOF {
			doc, term, err := ar.next()
			if err != nil {
				return ar.fail("the EOF block of "+strconv.Quote(key), err)
			}
			if !term {
				return errArchive("EOF block of %q holds a document (%d bytes)", key, len(doc))
			}
			if got := st.crc.Sum64(); got != h.CRC {
				return errArchive("CRC-64 mismatch for namespace %q: the documents hash to %#016x, the archive says %#016x", key, got, h.CRC)
			}
			st.closed = true
			if v.End != nil {
				if err := v.End(st.meta, st.docs); err != nil {
					return err
				}
			}
			continue
		}
		for {
			doc, term, err := ar.next()
			if err != nil {
				return ar.fail("documents of "+strconv.Quote(key), err)
			}
			if term {
				break
			}
			st.crc.Write(doc)
			st.docs++
			if v.Document != nil {
				if err := v.Document(st.meta, doc); err != nil {
					return err
				}
			}
		}
	}
	var open []string
	for key, st := range states {
		if !st.closed {
			open = append(open, strconv.Quote(key))
		}
	}
	if len(open) > 0 {
		sort.Strings(open)
		return errArchive("the archive ends before the EOF block of %s (truncated?)", strings.Join(open, ", "))
	}
	return nil
}

// archiveReader reads documents and terminators. The document returned by
// next aliases a buffer reused by the following call.
type archiveReader struct {
	r   *bufio.Reader
	buf []byte
}

// next reads a document or a terminator. A clean end of the stream (no
// byte read) returns io.EOF; an end within a document io.ErrUnexpectedEOF.
func (ar *archiveReader) next() (doc []byte, terminator bool, err error) {
	var lenBuf [4]byte
	if _, err := io.ReadFull(ar.r, lenBuf[:]); err != nil {
		return nil, false, err
	}
	n := binary.LittleEndian.Uint32(lenBuf[:])
	if n == archiveTerminator {
		return nil, true, nil
	}
	if n < minBSONSize || n > maxBSONSize {
		return nil, false, errArchive("%d is neither a BSON document length nor a terminator", n)
	}
	if cap(ar.buf) < int(n) {
		ar.buf = make([]byte, n, max(int(n), 64<<10))
	}
	ar.buf = ar.buf[:n]
	copy(ar.buf, lenBuf[:])
	if _, err := io.ReadFull(ar.r, ar.buf[4:]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, false, err
	}
	if ar.buf[n-1] != 0 {
		return nil, false, errArchive("a BSON document of %d bytes does not end with a NUL byte", n)
	}
	return ar.buf, false, nil
}

// fail describes a read error while expecting what: a truncated stream
// is an integrity failure; errors of the underlying reader (a broken
// upload) are passed on.
func (ar *archiveReader) fail(what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errArchive("the stream ends inside %s (truncated)", what)
	}
	if errors.Is(err, sdk.ErrIntegrity) && strings.HasPrefix(err.Error(), "mongodump archive:") {
		return err
	}
	return fmt.Errorf("mongodump archive: reading %s: %w", what, err)
}

// dataNamespaceCollection is the collection under which an archive holds
// the documents of m: for a time-series collection dumped from a server
// older than 8.3, its buckets collection (as mongodump writes it).
func dataNamespaceCollection(serverVersion string, m collectionMetadata) string {
	if m.Type != "timeseries" {
		return m.Collection
	}
	if v, ok := parseVersion(serverVersion); ok && (v[0] > 8 || v[0] == 8 && v[1] >= 3) {
		return m.Collection
	}
	return "system.buckets." + m.Collection
}

// parseVersion parses "X.Y.Z" with an optional "-suffix" or "+suffix", the
// way mongorestore reads server_version.
func parseVersion(s string) ([3]int, bool) {
	var v [3]int
	s, _, _ = strings.Cut(s, "-")
	s, _, _ = strings.Cut(s, "+")
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return v, false
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return v, false
		}
		v[i] = n
	}
	return v, true
}

func validHeaderDoc(doc []byte, what string) (bsoncore.Document, error) {
	d := bsoncore.Document(doc)
	if err := d.Validate(); err != nil {
		return nil, errArchive("%s is not valid BSON: %v", what, err)
	}
	return d, nil
}

func parseArchiveHeader(doc []byte) (archiveHeader, error) {
	var h archiveHeader
	d, err := validHeaderDoc(doc, "the archive header")
	if err != nil {
		return h, err
	}
	elems, _ := d.Elements()
	for _, e := range elems {
		v := e.Value()
		ok := true
		switch e.Key() {
		case "concurrent_collections":
			var n int64
			n, ok = v.AsInt64OK()
			h.ConcurrentCollections = int32(min(max(n, 0), 1<<20))
		case "version":
			h.FormatVersion, ok = v.StringValueOK()
		case "server_version":
			h.ServerVersion, ok = v.StringValueOK()
		case "tool_version":
			h.ToolVersion, ok = v.StringValueOK()
		}
		if !ok {
			return h, errArchive("archive header field %q has BSON type %s", e.Key(), v.Type)
		}
	}
	return h, nil
}

func parseCollectionMetadata(doc []byte) (collectionMetadata, error) {
	var m collectionMetadata
	d, err := validHeaderDoc(doc, "a prelude entry")
	if err != nil {
		return m, err
	}
	elems, _ := d.Elements()
	for _, e := range elems {
		v := e.Value()
		ok := true
		switch e.Key() {
		case "db":
			m.DB, ok = v.StringValueOK()
		case "collection":
			m.Collection, ok = v.StringValueOK()
		case "metadata":
			m.Metadata, ok = v.StringValueOK()
		case "size":
			m.Size, ok = v.AsInt64OK()
		case "type":
			m.Type, ok = v.StringValueOK()
		}
		if !ok {
			return m, errArchive("prelude entry field %q has BSON type %s", e.Key(), v.Type)
		}
	}
	if m.Collection == "" {
		return m, errArchive("a prelude entry names no collection")
	}
	return m, nil
}

func parseNamespaceHeader(doc []byte) (namespaceHeader, error) {
	var h namespaceHeader
	d, err := validHeaderDoc(doc, "a namespace header")
	if err != nil {
		return h, err
	}
	elems, _ := d.Elements()
	for _, e := range elems {
		v := e.Value()
		ok := true
		switch e.Key() {
		case "db":
			h.DB, ok = v.StringValueOK()
		case "collection":
			h.Collection, ok = v.StringValueOK()
		case "EOF":
			h.EOF, ok = v.BooleanOK()
		case "CRC":
			var n int64
			n, ok = v.Int64OK()
			h.CRC = uint64(n)
		default:
			return h, errArchive("namespace header has an unknown field %q", e.Key())
		}
		if !ok {
			return h, errArchive("namespace header field %q has BSON type %s", e.Key(), v.Type)
		}
	}
	if h.Collection == "" {
		return h, errArchive("a namespace header names no collection")
	}
	return h, nil
}
