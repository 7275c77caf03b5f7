package sdk

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
)

// noServe fails the test if serve tries to start go-plugin.
func noServe(t *testing.T) func(hclog.Logger, *inflight) plugin.Plugin {
	return func(hclog.Logger, *inflight) plugin.Plugin {
		t.Fatal("serve built a plugin for a command-line verb")
		return nil
	}
}

func TestServeDescribe(t *testing.T) {
	cases := []struct {
		name string
		info Info
		kind string
	}{
		{
			name: "dumper",
			info: Info{
				Name: "postgres", Version: "1.2.3", Kind: KindDumper,
				Capabilities: []string{CapRestore}, DefaultExtension: ".dump",
				Options: []Option{{Name: "format", Description: "pg_dump format"}, {Name: "password", Secret: true, Required: true}},
			},
			kind: dumperName,
		},
		{
			name: "sink",
			info: Info{Name: "local", Version: "0.1.0", Kind: KindSink, Capabilities: []string{CapGet, CapList, CapStat, CapDelete}},
			kind: sinkName,
		},
		{
			// Whatever the author put there, the SDK reports its own.
			name: "author-set versions are overridden",
			info: Info{Name: "x", Version: "9", Kind: KindSink, ProtocolVersion: 99, SDKVersion: "bogus"},
			kind: sinkName,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := serve(tc.info, []string{"describe"}, &stdout, &stderr, noServe(t), tc.kind)
			if code != 0 {
				t.Fatalf("exit code %d, want 0; stderr %q", code, stderr.String())
			}
			if stderr.Len() != 0 {
				t.Errorf("describe wrote to stderr: %q", stderr.String())
			}
			var got Info
			dec := json.NewDecoder(&stdout)
			dec.DisallowUnknownFields()
			if err := dec.Decode(&got); err != nil {
				t.Fatalf("stdout is not an Info as JSON: %v\n%s", err, stdout.String())
			}
			if dec.More() {
				t.Error("describe wrote more than one JSON value")
			}
			want := tc.info
			want.ProtocolVersion = ProtocolVersion
			want.SDKVersion = Version
			want.SDKFeatures = []string{"data-socket"}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("describe = %+v\nwant       %+v", got, want)
			}
			if got.ProtocolVersion != 1 || got.SDKVersion == "" {
				t.Errorf("protocol %d, sdk %q: the SDK must fill these in", got.ProtocolVersion, got.SDKVersion)
			}
		})
	}
}

func TestServeDescribeJSONFieldNames(t *testing.T) {
	var stdout bytes.Buffer
	info := Info{Name: "pg", Version: "1", Kind: KindDumper, DefaultExtension: ".dump"}
	if code := serve(info, []string{"describe"}, &stdout, new(bytes.Buffer), noServe(t), dumperName); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	var raw map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"name": "pg", "version": "1", "kind": "dumper",
		"protocol_version": float64(ProtocolVersion), "sdk_version": Version,
		"default_extension": ".dump", "sdk_features": []any{"data-socket"},
	}
	if !reflect.DeepEqual(raw, want) {
		t.Errorf("describe JSON = %v, want %v", raw, want)
	}
}

func TestServeUnknownArgument(t *testing.T) {
	cases := []string{"serve", "--help", "-h", "Describe", ""}
	for _, arg := range cases {
		t.Run(arg, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := serve(Info{Name: "postgres", Kind: KindDumper}, []string{arg, "describe"}, &stdout, &stderr, noServe(t), dumperName)
			if code != 2 {
				t.Errorf("exit code %d, want 2", code)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout = %q, want nothing", stdout.String())
			}
			msg := stderr.String()
			for _, s := range []string{"postgres", "unknown argument", `"` + arg + `"`, "Label Backup plugin", "describe"} {
				if !strings.Contains(msg, s) {
					t.Errorf("stderr %q does not mention %q", msg, s)
				}
			}
		})
	}
}

func TestDispenseName(t *testing.T) {
	cases := []struct {
		kind Kind
		want string
	}{
		{KindDumper, dumperName},
		{KindSink, sinkName},
	}
	for _, tc := range cases {
		t.Run(string(tc.kind), func(t *testing.T) {
			if got := DispenseName(tc.kind); got != tc.want {
				t.Errorf("DispenseName(%q) = %q, want %q", tc.kind, got, tc.want)
			}
			if _, ok := ClientPlugins()[ProtocolVersion][tc.want]; !ok {
				t.Errorf("ClientPlugins has no %q plugin", tc.want)
			}
		})
	}
}

func TestHandshakeVersion(t *testing.T) {
	h := Handshake()
	if h.ProtocolVersion != ProtocolVersion || h.MagicCookieKey == "" || h.MagicCookieValue == "" {
		t.Errorf("Handshake() = %+v", h)
	}
}
