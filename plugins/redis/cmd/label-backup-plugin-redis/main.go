// Command label-backup-plugin-redis is Label Backup's Redis dumper plugin.
// The agent starts it; run it with "describe" to see what it is.
package main

import (
	"github.com/labelbackup/label-backup/plugins/redis"
	"github.com/labelbackup/label-backup/sdk"
)

func main() { sdk.ServeDumper(redis.New()) }
