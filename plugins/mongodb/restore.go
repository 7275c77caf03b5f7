package mongodb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/labelbackup/label-backup/sdk"
)

const (
	// Insert batches: whichever limit comes first. The driver splits a
	// batch further to fit the server's message size.
	restoreBatchDocs  = 1000
	restoreBatchBytes = 16 << 20
	// codeNamespaceExists answers create for an existing collection.
	codeNamespaceExists = 48
)

// Restore reads a mongodump archive (ours or mongodump's) from r and loads
// it: collections are created with their options, documents inserted in
// ordered batches, indexes built once a collection's data is in, views
// created last. Each namespace's CRC is checked when its EOF block
// arrives; a mismatch fails with sdk.ErrIntegrity (the batches before it
// stay inserted: a restore is not atomic).
//
// Target.Database, when set and the archive holds exactly one database,
// restores into that database; otherwise every namespace goes back under
// its original database name. Target.Options: drop=true drops each
// collection when the archive reaches it, before restoring it (otherwise
// a document whose _id exists fails the restore).
func (p *Plugin) Restore(ctx context.Context, t sdk.Target, format string, r io.Reader) (sdk.RestoreResult, error) {
	if format != "" && format != Format {
		return sdk.RestoreResult{}, fmt.Errorf("mongodb: cannot restore format %q (only %q): %w", format, Format, sdk.ErrInvalidArgument)
	}
	drop, err := boolOption(t.Options, OptionDrop)
	if err != nil {
		return sdk.RestoreResult{}, err
	}
	// The database selection of a dump (URI path) does not rename a
	// restore: only an explicit Target.Database does.
	ci, err := targetConn(ctx, t)
	if err != nil {
		return sdk.RestoreResult{}, err
	}
	client, err := ci.connect()
	if err != nil {
		return sdk.RestoreResult{}, err
	}
	defer disconnect(ctx, client)
	if err := client.Ping(ctx, nil); err != nil {
		return sdk.RestoreResult{}, ci.fail(ctx, "connecting", err)
	}
	log := sdk.Logger(ctx)
	log.Debug("restore starting", "hosts", ci.hostList(), "database", t.Database)
	start := time.Now()
	rs := &restorer{ctx: ctx, client: client, ci: ci, drop: drop, rename: t.Database, states: map[*collectionMetadata]*restoreState{}}
	err = readArchive(r, archiveVisitor{Prelude: rs.prelude, Document: rs.document, End: rs.end})
	if err == nil {
		err = rs.createViews()
	}
	if err != nil {
		log.Debug("restore failed", "hosts", ci.hostList(), "error", err.Error())
		return sdk.RestoreResult{}, err
	}
	// Everything up to the archive's end has been read; the SDK reads on
	// to the stream's trailer and checks it.
	for _, w := range rs.warnings {
		log.Warn("restore warning", "warning", w)
	}
	log.Info("restore finished", "hosts", ci.hostList(), "databases", len(rs.dbs), "namespaces", rs.restored,
		"documents", rs.docs, "duration", time.Since(start).Round(time.Millisecond).String())
	return sdk.RestoreResult{Warnings: rs.warnings}, nil
}

// restoreState is one namespace of the archive being restored.
type restoreState struct {
	skip     bool
	prepared bool
	db       string // target database
	coll     string
	md       archivedMetadata
	view     bool
}

type restorer struct {
	ctx    context.Context
	client *mongo.Client
	ci     *connInfo
	drop   bool
	rename string

	states   map[*collectionMetadata]*restoreState
	views    []*restoreState
	dbs      []string
	warnings []string
	restored int
	docs     int64

	// The current insert batch: documents copied into one arena.
	batchState *restoreState
	arena      []byte
	offsets    []int
}

func (rs *restorer) warn(format string, args ...any) {
	rs.warnings = append(rs.warnings, fmt.Sprintf(format, args...))
}

// prelude decides where each namespace goes and reads its metadata.
func (rs *restorer) prelude(h archiveHeader, metas []collectionMetadata) error {
	if h.FormatVersion != archiveFormatVersion {
		rs.warn("archive format version %q (this plugin knows %q)", h.FormatVersion, archiveFormatVersion)
	}
	seen := map[string]bool{}
	for i := range metas {
		m := &metas[i]
		st := &restoreState{db: m.DB, coll: m.Collection}
		rs.states[m] = st
		switch {
		case m.DB == "":
			st.skip = true
			rs.warn("namespace %q without a database (an oplog) skipped: oplog replay is not supported", m.Collection)
		case m.Type == "timeseries":
			st.skip = true
			rs.warn("time-series collection %s.%s skipped: not supported", m.DB, m.Collection)
		case skipCollection(m.Collection):
			st.skip = true
			rs.warn("system collection %s.%s skipped", m.DB, m.Collection)
		}
		if !st.skip && !seen[m.DB] {
			seen[m.DB] = true
			rs.dbs = append(rs.dbs, m.DB)
		}
	}
	sort.Strings(rs.dbs)
	rename := false
	switch {
	case rs.rename != "" && len(rs.dbs) == 1:
		rename = true
	case rs.rename != "" && len(rs.dbs) > 1:
		rs.warn("the archive holds %d databases (%v): restoring them under their own names, not into %q", len(rs.dbs), rs.dbs, rs.rename)
	}
	for i := range metas {
		m := &metas[i]
		st := rs.states[m]
		if st.skip {
			continue
		}
		md, err := parseMetadataJSON(m.Metadata)
		if err != nil {
			return errArchive("metadata of %s.%s is not valid Extended JSON: %v", m.DB, m.Collection, err)
		}
		st.md = md
		st.view = m.Type == "view"
		if rename {
			st.db = rs.rename
		}
		if st.view {
			rs.views = append(rs.views, st)
		}
	}
	if !rename {
		rs.ci.database = "" // errors name each namespace instead
	}
	return nil
}

// prepare drops (with drop=true) and creates a namespace's collection the
// first time the archive reaches it, not before: when an archive turns out
// to be broken, the collections after the break are left untouched.
func (rs *restorer) prepare(st *restoreState) error {
	if st.prepared {
		return nil
	}
	st.prepared = true
	if rs.drop {
		if err := rs.client.Database(st.db).Collection(st.coll).Drop(rs.ctx); err != nil {
			return rs.ci.fail(rs.ctx, fmt.Sprintf("dropping %s.%s", st.db, st.coll), err)
		}
	}
	return rs.create(st)
}

// create makes a collection (or view) with its archived options; one that
// already exists is kept as it is.
func (rs *restorer) create(st *restoreState) error {
	cmd := bson.D{{Key: "create", Value: st.coll}}
	for _, e := range st.md.Options {
		if e.Key != "create" {
			cmd = append(cmd, e)
		}
	}
	err := rs.client.Database(st.db).RunCommand(rs.ctx, cmd).Err()
	var se mongo.ServerError
	if errors.As(err, &se) && se.HasErrorCode(codeNamespaceExists) {
		return nil
	}
	if err != nil {
		return rs.ci.fail(rs.ctx, fmt.Sprintf("creating %s.%s", st.db, st.coll), err)
	}
	return nil
}

// document adds one document to the insert batch.
func (rs *restorer) document(m *collectionMetadata, doc []byte) error {
	st := rs.states[m]
	if st.skip {
		return nil
	}
	if st.view {
		return errArchive("view %s.%s has documents", m.DB, m.Collection)
	}
	if rs.batchState != st || len(rs.offsets) >= restoreBatchDocs || len(rs.arena)+len(doc) > restoreBatchBytes {
		if err := rs.flush(); err != nil {
			return err
		}
		if err := rs.prepare(st); err != nil {
			return err
		}
	}
	rs.batchState = st
	rs.offsets = append(rs.offsets, len(rs.arena))
	rs.arena = append(rs.arena, doc...)
	return nil
}

// flush inserts the batch, in order.
func (rs *restorer) flush() error {
	st := rs.batchState
	if st == nil || len(rs.offsets) == 0 {
		return nil
	}
	docs := make([]any, len(rs.offsets))
	for i, off := range rs.offsets {
		end := len(rs.arena)
		if i+1 < len(rs.offsets) {
			end = rs.offsets[i+1]
		}
		docs[i] = bson.Raw(rs.arena[off:end])
	}
	if _, err := rs.client.Database(st.db).Collection(st.coll).InsertMany(rs.ctx, docs); err != nil {
		dup := mongo.IsDuplicateKeyError(err)
		err = rs.ci.fail(rs.ctx, fmt.Sprintf("inserting into %s.%s", st.db, st.coll), err)
		if dup {
			return fmt.Errorf("%w (restore with drop=true to replace existing collections)", err)
		}
		return err
	}
	rs.docs += int64(len(docs))
	rs.arena, rs.offsets = rs.arena[:0], rs.offsets[:0]
	return nil
}

// end finishes a namespace whose CRC checked out: the last batch, then the
// indexes.
func (rs *restorer) end(m *collectionMetadata, _ int64) error {
	st := rs.states[m]
	if st.skip || st.view {
		return nil
	}
	if err := rs.prepare(st); err != nil {
		return err
	}
	if rs.batchState == st {
		if err := rs.flush(); err != nil {
			return err
		}
		rs.batchState = nil
	}
	if err := rs.createIndexes(st); err != nil {
		return err
	}
	rs.restored++
	return nil
}

// createIndexes builds a collection's archived indexes but _id's, in one
// createIndexes command.
func (rs *restorer) createIndexes(st *restoreState) error {
	var specs bson.A
	for _, ix := range st.md.Indexes {
		spec, name := indexSpec(ix)
		if name == "_id_" {
			continue
		}
		specs = append(specs, spec)
	}
	if len(specs) == 0 {
		return nil
	}
	cmd := bson.D{{Key: "createIndexes", Value: st.coll}, {Key: "indexes", Value: specs}}
	if err := rs.client.Database(st.db).RunCommand(rs.ctx, cmd).Err(); err != nil {
		return rs.ci.fail(rs.ctx, fmt.Sprintf("creating the indexes of %s.%s", st.db, st.coll), err)
	}
	return nil
}

// indexSpec prepares an archived index specification for createIndexes:
// "ns" (written by old servers) is dropped, and so is "v" when it is the
// default version 2, which some servers refuse to be told. Anything else
// is kept as archived.
func indexSpec(ix bson.D) (bson.D, string) {
	spec := make(bson.D, 0, len(ix))
	name := ""
	for _, e := range ix {
		switch e.Key {
		case "ns":
			continue
		case "v":
			if isNumber(e.Value, 2) {
				continue
			}
		case "name":
			name, _ = e.Value.(string)
		}
		spec = append(spec, e)
	}
	return spec, name
}

func isNumber(v any, n float64) bool {
	switch x := v.(type) {
	case int32:
		return float64(x) == n
	case int64:
		return float64(x) == n
	case float64:
		return x == n
	}
	return false
}

// createViews creates the archived views once every collection is in.
func (rs *restorer) createViews() error {
	for _, st := range rs.views {
		if err := rs.prepare(st); err != nil {
			return err
		}
		rs.restored++
	}
	rs.views = nil
	return nil
}
