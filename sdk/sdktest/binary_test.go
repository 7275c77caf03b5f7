package sdktest

import (
	"context"
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
	s := b.Sink(t)
	if _, err := s.Put(context.Background(), sdk.PutRequest{Key: "a/b"}, strings.NewReader("hello")); err != nil {
		t.Fatal(err)
	}
	b.Stop()
	b.AssertNoSecrets(t, "hello-not-logged")
}
