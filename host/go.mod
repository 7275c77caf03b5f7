module github.com/labelbackup/label-backup/host

go 1.26
