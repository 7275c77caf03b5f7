package s3

import (
	"testing"

	"github.com/labelbackup/label-backup/sdk"
	"github.com/labelbackup/label-backup/sdk/sdktest"
)

// TestConformance runs the SDK's sink kit against a real versitygw, a
// fresh bucket per case.
func TestConformance(t *testing.T) {
	sdktest.RunSinkSuite(t, func(t *testing.T) sdk.Sink {
		return newTestSink(t, gw, gw.newBucket(t))
	})
}
