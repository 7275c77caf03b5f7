// Command label-backup-plugin-local is the local filesystem sink plugin.
// The agent starts it; run it by hand only with "describe".
package main

import (
	"github.com/labelbackup/label-backup/plugins/local"
	"github.com/labelbackup/label-backup/sdk"
)

func main() { sdk.ServeSink(local.New()) }
