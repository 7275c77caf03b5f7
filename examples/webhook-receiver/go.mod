module github.com/labelbackup/label-backup/examples/webhook-receiver

go 1.26.0
