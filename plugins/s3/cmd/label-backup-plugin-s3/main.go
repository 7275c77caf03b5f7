// Command label-backup-plugin-s3 is the S3-compatible storage sink plugin.
// The agent starts it; run it by hand only with "describe".
package main

import (
	"github.com/labelbackup/label-backup/plugins/s3"
	"github.com/labelbackup/label-backup/sdk"
)

func main() { sdk.ServeSink(s3.New()) }
