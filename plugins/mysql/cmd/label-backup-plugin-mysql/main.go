// Command label-backup-plugin-mysql is Label Backup's MySQL/MariaDB dumper
// plugin. The agent starts it; run it with "describe" to see what it is.
package main

import (
	"github.com/labelbackup/label-backup/plugins/mysql"
	"github.com/labelbackup/label-backup/sdk"
)

func main() { sdk.ServeDumper(mysql.New()) }
