//go:build !linux

package toolexec

import "syscall"

// sysProcAttr puts the tool in its own process group. Only Linux can also
// tie the tool's life to the plugin's (Pdeathsig).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

func signalGroup(pid int, sig syscall.Signal) {
	_ = syscall.Kill(-pid, sig)
}
