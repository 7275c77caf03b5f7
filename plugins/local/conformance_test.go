package local

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/labelbackup/label-backup/sdk"
	"github.com/labelbackup/label-backup/sdk/sdktest"
)

func TestConformance(t *testing.T) {
	sdktest.RunSinkSuite(t, func(t *testing.T) sdk.Sink {
		s := New()
		// min_free_bytes 0: the suite checks the contract, not the disk
		// the tests happen to run on.
		settings := map[string]string{"path": filepath.Join(t.TempDir(), "backups"), "min_free_bytes": "0"}
		if err := s.Configure(context.Background(), settings); err != nil {
			t.Fatalf("configure: %v", err)
		}
		return s
	})
}
