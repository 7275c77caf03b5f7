// Command label-backup-plugin-synthetic is a benchmark dumper.
package main

import (
	"github.com/labelbackup/label-backup/host/internal/synthetic"
	"github.com/labelbackup/label-backup/sdk"
)

func main() { sdk.ServeDumper(synthetic.New()) }
