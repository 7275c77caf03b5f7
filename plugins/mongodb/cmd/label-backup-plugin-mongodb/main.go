// Command label-backup-plugin-mongodb is Label Backup's MongoDB dumper
// plugin. The agent starts it; run it with "describe" to see what it is.
package main

import (
	"github.com/labelbackup/label-backup/plugins/mongodb"
	"github.com/labelbackup/label-backup/sdk"
)

func main() { sdk.ServeDumper(mongodb.New()) }
