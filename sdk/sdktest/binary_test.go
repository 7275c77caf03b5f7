package sdktest

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/labelbackup/label-backup/sdk"
)

// TestStartBinary runs the kit's binary harness on the SDK's own test
// plugin (a memory sink).
func TestStartBinary(t *testing.T) {
	b := StartBinary(t, "../internal/testplugin")
	if b.Info.Name != "memory" || b.Info.Kind != sdk.KindSink || !strings.HasSuffix(b.Path, "label-backup-plugin-memory") {
		t.Errorf("binary %s: %+v", b.Path, b.Info)
	}
	// The SDK declares its transport features, in describe and on the wire.
	if !slices.Contains(b.Info.SDKFeatures, "data-socket") {
		t.Errorf("describe: sdk_features %v lack data-socket", b.Info.SDKFeatures)
	}
	s := b.Sink(t)
	if info, err := s.Describe(context.Background()); err != nil || !slices.Contains(info.SDKFeatures, "data-socket") {
		t.Errorf("Describe: %+v, %v", info, err)
	}
	if _, err := s.Put(context.Background(), sdk.PutRequest{Key: "a/b"}, strings.NewReader("hello")); err != nil {
		t.Fatal(err)
	}
	b.Stop()
	b.AssertNoSecrets(t, "hello-not-logged")
}
