package sdk

import (
	"reflect"
	"testing"
	"time"
)

func TestInfoProtoRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		info Info
	}{
		{"zero", Info{}},
		{"dumper", Info{
			Name: "postgres", Version: "1.0.0", Kind: KindDumper, ProtocolVersion: 1, SDKVersion: "0.1.0",
			Capabilities: []string{CapRestore}, DefaultExtension: ".dump",
			Options: []Option{{Name: "password", Description: "db password", Secret: true, Required: true}, {Name: "jobs"}},
		}},
		{"sink", Info{Name: "local", Version: "2", Kind: KindSink, Capabilities: []string{CapGet, CapList, CapStat, CapDelete}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := infoFromProto(infoToProto(tc.info)); !reflect.DeepEqual(got, tc.info) {
				t.Errorf("round trip = %+v, want %+v", got, tc.info)
			}
		})
	}
	if got := kindFromProto(kindToProto(Kind("bogus"))); got != "" {
		t.Errorf("unknown kind came back as %q", got)
	}
}

func TestTargetProtoRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		t    Target
	}{
		{"zero", Target{}},
		{"full", Target{Connection: "postgres://u:p@h/db", Database: "app", Options: map[string]string{"format": "custom"}, Container: ContainerRef{ID: "abc", Name: "pg"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := targetFromProto(targetToProto(tc.t)); !reflect.DeepEqual(got, tc.t) {
				t.Errorf("round trip = %+v, want %+v", got, tc.t)
			}
		})
	}
}

func TestObjectProtoRoundTrip(t *testing.T) {
	mod := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	cases := []struct {
		name string
		o    ObjectInfo
	}{
		{"zero", ObjectInfo{}},
		{"full", ObjectInfo{Key: "a/b.dump", Size: 1 << 40, Modified: mod, URL: "s3://bkt/a/b.dump", SHA256: []byte{1, 2, 3}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := objectFromProto(objectToProto(tc.o))
			if !got.Modified.Equal(tc.o.Modified) || got.Modified.IsZero() != tc.o.Modified.IsZero() {
				t.Errorf("modified = %v, want %v", got.Modified, tc.o.Modified)
			}
			got.Modified, tc.o.Modified = time.Time{}, time.Time{}
			if !reflect.DeepEqual(got, tc.o) {
				t.Errorf("round trip = %+v, want %+v", got, tc.o)
			}
		})
	}
}
