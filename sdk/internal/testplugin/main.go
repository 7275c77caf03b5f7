// Command testplugin serves sdktest.MemorySink as a real plugin binary, so
// SDK tests can exercise Serve and the transport across processes.
package main

import (
	"github.com/labelbackup/label-backup/sdk"
	"github.com/labelbackup/label-backup/sdk/sdktest"
)

func main() { sdk.ServeSink(sdktest.NewMemorySink()) }
