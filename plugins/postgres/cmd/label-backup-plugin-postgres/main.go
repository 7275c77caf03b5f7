// Command label-backup-plugin-postgres is Label Backup's PostgreSQL dumper
// plugin. The agent starts it; run it with "describe" to see what it is.
package main

import (
	"github.com/labelbackup/label-backup/plugins/postgres"
	"github.com/labelbackup/label-backup/sdk"
)

func main() { sdk.ServeDumper(postgres.New()) }
