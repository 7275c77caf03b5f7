// Command label-backup-plugin-sqlite is the example "sqlite" dumper plugin.
// Put it in the agent's PLUGIN_DIR and label a container backup.type=sqlite.
package main

import (
	"github.com/labelbackup/label-backup/examples/plugin-sqlite"
	"github.com/labelbackup/label-backup/sdk"
)

func main() { sdk.ServeDumper(sqlite.New()) }
