package mongodb

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/labelbackup/label-backup/sdk"
)

// writeBufferSize is the archive's write buffer: exactly the SDK's chunk
// size, so each flush is one aligned chunk the SDK sends without copying.
const writeBufferSize = sdk.DefaultChunkSize

// namespacePlan is one namespace to dump.
type namespacePlan struct {
	db   string
	info collectionInfo
	meta collectionMetadata
}

// Dump streams a mongodump archive of the target into w: the prelude
// (every namespace with its options and indexes), then each collection's
// documents straight from the cursor, then its EOF block. Views are
// recorded (definition only, as mongodump does); time-series collections
// are skipped with a warning. The dump is not a point-in-time snapshot
// across collections (nor is mongodump's without --oplog).
func (p *Plugin) Dump(ctx context.Context, t sdk.Target, w io.Writer) (sdk.DumpResult, error) {
	ci, err := targetConn(ctx, t)
	if err != nil {
		return sdk.DumpResult{}, err
	}
	includeSystem, err := boolOption(t.Options, OptionIncludeSystem)
	if err != nil {
		return sdk.DumpResult{}, err
	}
	client, err := ci.connect()
	if err != nil {
		return sdk.DumpResult{}, err
	}
	defer disconnect(ctx, client)
	log := sdk.Logger(ctx)
	log.Debug("dump starting", "hosts", ci.hostList(), "database", ci.database)
	start := time.Now()

	version, err := serverVersion(ctx, client)
	if err != nil {
		return sdk.DumpResult{}, ci.fail(ctx, "connecting", err)
	}
	var warnings []string
	headerVersion := version.version
	if _, ok := parseVersion(headerVersion); !ok {
		warnings = append(warnings, fmt.Sprintf("the server reports version %q, not X.Y.Z; the archive records 0.0.0 so that mongorestore accepts it", headerVersion))
		headerVersion = "0.0.0"
	}
	dbs, err := databasesToDump(ctx, client, ci, includeSystem)
	if err != nil {
		return sdk.DumpResult{}, err
	}
	var plan []namespacePlan
	for _, db := range dbs {
		nss, warns, err := planDatabase(ctx, client, ci, db)
		if err != nil {
			return sdk.DumpResult{}, err
		}
		plan = append(plan, nss...)
		warnings = append(warnings, warns...)
	}
	if len(plan) == 0 {
		warnings = append(warnings, fmt.Sprintf("%s: nothing to dump (no collections)", ci.where()))
	}

	bw := bufio.NewWriterSize(w, writeBufferSize)
	aw := newArchiveWriter(bw)
	metas := make([]collectionMetadata, len(plan))
	for i, n := range plan {
		metas[i] = n.meta
	}
	header := archiveHeader{
		ConcurrentCollections: 1,
		FormatVersion:         archiveFormatVersion,
		ServerVersion:         headerVersion,
		ToolVersion:           toolVersion,
	}
	fail := func(err error) (sdk.DumpResult, error) {
		var we *writeError
		if errors.As(err, &we) {
			err = fmt.Errorf("mongodb: dumping %s: %w", ci.where(), err)
		}
		log.Debug("dump failed", "hosts", ci.hostList(), "database", ci.database, "error", err.Error())
		return sdk.DumpResult{}, err
	}
	if err := aw.WritePrelude(header, metas); err != nil {
		return fail(err)
	}
	var totalDocs int64
	for _, n := range plan {
		if err := aw.Begin(n.db, n.info.Name); err != nil {
			return fail(err)
		}
		if n.info.Type != "view" {
			if err := dumpCollection(ctx, client, ci, n, aw); err != nil {
				return fail(err)
			}
		}
		docs, bytes, err := aw.End()
		if err != nil {
			return fail(err)
		}
		totalDocs += docs
		log.Debug("collection dumped", "database", n.db, "collection", n.info.Name, "documents", docs, "bytes", bytes)
	}
	if err := aw.Close(); err != nil {
		return fail(err)
	}
	if err := bw.Flush(); err != nil {
		return fail(&writeError{err: err})
	}
	for _, w := range warnings {
		log.Warn("dump warning", "warning", w)
	}
	log.Info("dump finished", "hosts", ci.hostList(), "database", ci.database, "databases", len(dbs),
		"namespaces", len(plan), "documents", totalDocs, "duration", time.Since(start).Round(time.Millisecond).String())
	return sdk.DumpResult{Format: Format, Extension: Extension, Warnings: warnings}, nil
}

// databasesToDump is the selected database (which must exist) or every
// database but the system ones, sorted.
func databasesToDump(ctx context.Context, client *mongo.Client, ci *connInfo, includeSystem bool) ([]string, error) {
	if ci.database != "" {
		if err := checkDatabase(ctx, ctx, client, ci); err != nil {
			return nil, err
		}
		return []string{ci.database}, nil
	}
	names, err := client.ListDatabaseNames(ctx, bson.D{})
	if err != nil {
		return nil, ci.fail(ctx, "listing databases", err)
	}
	var dbs []string
	for _, n := range names {
		if systemDatabases[n] && !includeSystem {
			continue
		}
		dbs = append(dbs, n)
	}
	slices.Sort(dbs)
	return dbs, nil
}

// skipCollection says whether a namespace stays out of dumps (and
// restores): system collections other than system.js, like mongodump.
func skipCollection(name string) bool {
	return strings.HasPrefix(name, "system.") && name != "system.js"
}

// planDatabase lists a database's collections and views with their
// options and indexes, sorted by name.
func planDatabase(ctx context.Context, client *mongo.Client, ci *connInfo, db string) ([]namespacePlan, []string, error) {
	cur, err := client.Database(db).ListCollections(ctx, bson.D{})
	if err != nil {
		return nil, nil, ci.fail(ctx, fmt.Sprintf("listing the collections of %q", db), err)
	}
	defer closeCursor(ctx, cur)
	var infos []collectionInfo
	var warnings []string
	for cur.Next(ctx) {
		info, err := parseCollectionInfo(cur.Current)
		if err != nil {
			return nil, nil, fmt.Errorf("mongodb: database %q: %w", db, err)
		}
		switch {
		case skipCollection(info.Name):
			continue
		case info.Type == "timeseries":
			warnings = append(warnings, fmt.Sprintf("time-series collection %s.%s skipped: this plugin does not dump time-series collections", db, info.Name))
			continue
		}
		// Keep the options beyond the cursor's batch.
		info.Options = bson.Raw(slices.Clone(info.Options))
		infos = append(infos, info)
	}
	if err := cur.Err(); err != nil {
		return nil, nil, ci.fail(ctx, fmt.Sprintf("listing the collections of %q", db), err)
	}
	slices.SortFunc(infos, func(a, b collectionInfo) int { return strings.Compare(a.Name, b.Name) })

	plan := make([]namespacePlan, 0, len(infos))
	for _, info := range infos {
		var indexes []bson.Raw
		if info.Type != "view" {
			indexes, err = listIndexes(ctx, client.Database(db).Collection(info.Name))
			var se mongo.ServerError
			if errors.As(err, &se) && se.HasErrorCode(codeNamespaceNotFound) && ctx.Err() == nil {
				warnings = append(warnings, fmt.Sprintf("collection %s.%s was dropped while the dump started; skipped", db, info.Name))
				continue
			}
			if err != nil {
				return nil, nil, ci.fail(ctx, fmt.Sprintf("listing the indexes of %s.%s", db, info.Name), err)
			}
		}
		js, err := metadataJSON(info, indexes)
		if err != nil {
			return nil, nil, fmt.Errorf("mongodb: %s.%s: %w", db, info.Name, err)
		}
		plan = append(plan, namespacePlan{db: db, info: info, meta: collectionMetadata{
			DB: db, Collection: info.Name, Metadata: js, Type: preludeType(info.Type),
		}})
	}
	return plan, warnings, nil
}

// listIndexes returns a collection's index specifications as listIndexes
// gives them.
func listIndexes(ctx context.Context, coll *mongo.Collection) ([]bson.Raw, error) {
	cur, err := coll.Indexes().List(ctx)
	if err != nil {
		return nil, err
	}
	defer closeCursor(ctx, cur)
	var out []bson.Raw
	for cur.Next(ctx) {
		out = append(out, bson.Raw(slices.Clone(cur.Current)))
	}
	return out, cur.Err()
}

// dumpCollection streams one collection's documents into the archive, one
// server batch at a time: nothing beyond the current batch is held.
func dumpCollection(ctx context.Context, client *mongo.Client, ci *connInfo, n namespacePlan, aw *archiveWriter) error {
	coll := client.Database(n.db).Collection(n.info.Name)
	// An unfiltered dump is a deliberate full scan; saying so with a
	// $natural hint keeps servers with scan limits from refusing it.
	cur, err := coll.Find(ctx, bson.D{}, options.Find().SetHint(bson.D{{Key: "$natural", Value: 1}}))
	if err != nil {
		return ci.fail(ctx, fmt.Sprintf("reading %s.%s", n.db, n.info.Name), err)
	}
	defer closeCursor(ctx, cur)
	for cur.Next(ctx) {
		if err := aw.WriteDocument(cur.Current); err != nil {
			return err
		}
	}
	if err := cur.Err(); err != nil {
		return ci.fail(ctx, fmt.Sprintf("reading %s.%s", n.db, n.info.Name), err)
	}
	return nil
}

// closeCursor closes a cursor (killCursors) even when ctx is cancelled.
func closeCursor(ctx context.Context, cur *mongo.Cursor) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = cur.Close(ctx)
}
