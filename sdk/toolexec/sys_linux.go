package toolexec

import "syscall"

// sysProcAttr puts the tool in its own process group (so cancellation
// reaches its children) and has the kernel kill it if the plugin dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

func signalGroup(pid int, sig syscall.Signal) {
	_ = syscall.Kill(-pid, sig)
}
