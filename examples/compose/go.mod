module github.com/labelbackup/label-backup/examples/compose

go 1.26.0
