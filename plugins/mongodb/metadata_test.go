package mongodb

import (
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

func mustRaw(t *testing.T, v any) bson.Raw {
	t.Helper()
	b, err := bson.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMetadataJSON checks the metadata string against what mongodump
// writes to <collection>.metadata.json: canonical Extended JSON v2, keys
// options, indexes, uuid, collectionName, type, no spaces.
func TestMetadataJSON(t *testing.T) {
	info := collectionInfo{
		Name:    "items",
		Type:    "collection",
		Options: mustRaw(t, bson.D{{Key: "capped", Value: true}, {Key: "size", Value: int64(4096)}}),
		UUID:    "00112233445566778899aabbccddeeff",
	}
	indexes := []bson.Raw{
		mustRaw(t, bson.D{{Key: "v", Value: int32(2)}, {Key: "key", Value: bson.D{{Key: "_id", Value: int32(1)}}}, {Key: "name", Value: "_id_"}}),
		mustRaw(t, bson.D{{Key: "v", Value: int32(2)}, {Key: "key", Value: bson.D{{Key: "a", Value: int32(1)}, {Key: "b", Value: -1.0}}}, {Key: "name", Value: "a_1_b_-1"}, {Key: "unique", Value: true}}),
	}
	got, err := metadataJSON(info, indexes)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"options":{"capped":true,"size":{"$numberLong":"4096"}},` +
		`"indexes":[{"v":{"$numberInt":"2"},"key":{"_id":{"$numberInt":"1"}},"name":"_id_"},` +
		`{"v":{"$numberInt":"2"},"key":{"a":{"$numberInt":"1"},"b":{"$numberDouble":"-1.0"}},"name":"a_1_b_-1","unique":true}],` +
		`"uuid":"00112233445566778899aabbccddeeff","collectionName":"items","type":"collection"}`
	if got != want {
		t.Fatalf("metadata\n got %s\nwant %s", got, want)
	}

	// A view: no indexes (an empty array, never null), its definition in
	// the options.
	view := collectionInfo{Name: "v", Type: "view", Options: mustRaw(t, bson.D{{Key: "viewOn", Value: "items"}, {Key: "pipeline", Value: bson.A{bson.D{{Key: "$match", Value: bson.D{{Key: "a", Value: int32(1)}}}}}}})}
	got, err = metadataJSON(view, nil)
	if err != nil {
		t.Fatal(err)
	}
	want = `{"options":{"viewOn":"items","pipeline":[{"$match":{"a":{"$numberInt":"1"}}}]},"indexes":[],"collectionName":"v","type":"view"}`
	if got != want {
		t.Fatalf("view metadata\n got %s\nwant %s", got, want)
	}

	// Read back, types intact.
	md, err := parseMetadataJSON(`{"options":{"capped":true,"size":{"$numberLong":"4096"}},"indexes":[{"v":{"$numberInt":"2"},"key":{"b":{"$numberDouble":"-1.0"}},"name":"b_-1","ns":"x.y"}],"uuid":"ab","collectionName":"items","type":"collection"}`)
	if err != nil {
		t.Fatal(err)
	}
	if len(md.Options) != 2 || md.Options[1].Value != int64(4096) || md.UUID != "ab" || md.Type != "collection" || len(md.Indexes) != 1 {
		t.Fatalf("parsed %+v", md)
	}
	spec, name := indexSpec(md.Indexes[0])
	if name != "b_-1" || len(spec) != 2 || spec[0].Key != "key" || spec[1].Key != "name" {
		t.Errorf("index spec %v (ns and the default v must go)", spec)
	}
	if kv := spec[0].Value.(bson.D); kv[0].Value != -1.0 {
		t.Errorf("key type changed: %T", kv[0].Value)
	}
	spec, _ = indexSpec(bson.D{{Key: "v", Value: int32(1)}, {Key: "key", Value: bson.D{{Key: "a", Value: int32(1)}}}, {Key: "name", Value: "a_1"}})
	if spec[0].Key != "v" {
		t.Errorf("a v:1 index must keep its version: %v", spec)
	}
	if md, err := parseMetadataJSON(""); err != nil || md.Indexes != nil {
		t.Errorf("empty metadata: %+v, %v", md, err)
	}
}

func TestParseCollectionInfo(t *testing.T) {
	raw := mustRaw(t, bson.D{
		{Key: "name", Value: "c1"}, {Key: "type", Value: "collection"},
		{Key: "options", Value: bson.D{}},
		{Key: "info", Value: bson.D{{Key: "readOnly", Value: false}, {Key: "uuid", Value: bson.Binary{Subtype: 4, Data: []byte{0xdb, 0x88, 0x05, 0x0f, 0x14, 0xe1, 0x4b, 0xd3, 0x80, 0x23, 0x17, 0x17, 0x7d, 0xfc, 0x68, 0xfc}}}}},
		{Key: "idIndex", Value: bson.D{{Key: "v", Value: int32(2)}}},
	})
	ci, err := parseCollectionInfo(raw)
	if err != nil {
		t.Fatal(err)
	}
	if ci.Name != "c1" || ci.Type != "collection" || ci.Options != nil || ci.UUID != "db88050f14e14bd3802317177dfc68fc" {
		t.Errorf("%+v", ci)
	}
	if _, err := parseCollectionInfo(mustRaw(t, bson.D{{Key: "type", Value: "view"}})); err == nil {
		t.Error("an entry without a name was accepted")
	}
	for typ, want := range map[string]string{"collection": "", "view": "view", "timeseries": "timeseries", "": ""} {
		if got := preludeType(typ); got != want {
			t.Errorf("preludeType(%q) = %q", typ, got)
		}
	}
}
