package mongodb

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// collectionInfo is what listCollections says about one namespace.
type collectionInfo struct {
	Name string
	// Type is "collection", "view" or "timeseries" ("" from old servers).
	Type string
	// Options are the creation options (capped, validator, viewOn,
	// pipeline, ...), empty when none.
	Options bson.Raw
	// UUID is the collection UUID in hex, "" when the server has none.
	UUID string
}

// parseCollectionInfo reads one listCollections result.
func parseCollectionInfo(raw bson.Raw) (collectionInfo, error) {
	var ci collectionInfo
	name, ok := raw.Lookup("name").StringValueOK()
	if !ok || name == "" {
		return ci, errors.New("listCollections returned an entry without a name")
	}
	ci.Name = name
	ci.Type, _ = raw.Lookup("type").StringValueOK()
	if opts, ok := raw.Lookup("options").DocumentOK(); ok && len(opts) > minBSONSize {
		ci.Options = opts
	}
	if info, ok := raw.Lookup("info").DocumentOK(); ok {
		if subtype, data, ok := info.Lookup("uuid").BinaryOK(); ok && subtype == 4 {
			ci.UUID = hex.EncodeToString(data)
		}
	}
	return ci, nil
}

// preludeType is a namespace's type as the prelude records it: "view" and
// "timeseries" matter to mongorestore, anything else is "".
func preludeType(collType string) string {
	if collType == "view" || collType == "timeseries" {
		return collType
	}
	return ""
}

// metadataJSON builds the metadata string of a prelude entry, the same
// document mongodump writes to <collection>.metadata.json:
//
//	{"options": {...}, "indexes": [...], "uuid": "...", "collectionName": "...", "type": "..."}
//
// in canonical Extended JSON v2. options, uuid and type are left out when
// empty; indexes is always an array (empty for views). Index specifications
// are kept exactly as listIndexes returned them. The JSON is checked to
// convert back to the very same BSON, so no type is lost.
func metadataJSON(ci collectionInfo, indexes []bson.Raw) (string, error) {
	var d bson.D
	if len(ci.Options) > 0 {
		d = append(d, bson.E{Key: "options", Value: ci.Options})
	}
	idx := bson.A{}
	for _, ix := range indexes {
		idx = append(idx, ix)
	}
	d = append(d, bson.E{Key: "indexes", Value: idx})
	if ci.UUID != "" {
		d = append(d, bson.E{Key: "uuid", Value: ci.UUID})
	}
	d = append(d, bson.E{Key: "collectionName", Value: ci.Name})
	if ci.Type != "" {
		d = append(d, bson.E{Key: "type", Value: ci.Type})
	}
	js, err := bson.MarshalExtJSON(d, true, false)
	if err != nil {
		return "", fmt.Errorf("metadata of %q as Extended JSON: %w", ci.Name, err)
	}
	want, err := bson.Marshal(d)
	if err != nil {
		return "", fmt.Errorf("metadata of %q as BSON: %w", ci.Name, err)
	}
	var back bson.D
	if err := bson.UnmarshalExtJSON(js, true, &back); err != nil {
		return "", fmt.Errorf("metadata of %q does not read back: %w", ci.Name, err)
	}
	got, err := bson.Marshal(back)
	if err != nil || !bytes.Equal(got, want) {
		return "", fmt.Errorf("metadata of %q does not survive Extended JSON unchanged", ci.Name)
	}
	return string(js), nil
}

// archivedMetadata is a prelude entry's metadata, read back.
type archivedMetadata struct {
	Options        bson.D   `bson:"options,omitempty"`
	Indexes        []bson.D `bson:"indexes"`
	UUID           string   `bson:"uuid,omitempty"`
	CollectionName string   `bson:"collectionName,omitempty"`
	Type           string   `bson:"type,omitempty"`
}

// parseMetadataJSON reads a metadata string (canonical or relaxed
// Extended JSON). An empty string is no metadata.
func parseMetadataJSON(s string) (archivedMetadata, error) {
	var m archivedMetadata
	if s == "" {
		return m, nil
	}
	if err := bson.UnmarshalExtJSON([]byte(s), false, &m); err != nil {
		return m, err
	}
	return m, nil
}
