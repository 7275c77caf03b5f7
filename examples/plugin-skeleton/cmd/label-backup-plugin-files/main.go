// Command label-backup-plugin-files is the example "files" dumper plugin.
package main

import (
	files "github.com/labelbackup/label-backup/examples/plugin-skeleton"
	"github.com/labelbackup/label-backup/sdk"
)

func main() { sdk.ServeDumper(files.New()) }
