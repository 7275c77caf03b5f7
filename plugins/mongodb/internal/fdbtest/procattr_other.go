//go:build !linux

package fdbtest

import "syscall"

func sysProcAttr() *syscall.SysProcAttr { return nil }
