package toolexec

import (
	"syscall"
	"testing"
)

func TestSysProcAttrPdeathsig(t *testing.T) {
	a := sysProcAttr()
	if a.Pdeathsig != syscall.SIGKILL {
		t.Errorf("Pdeathsig = %v, want SIGKILL so a tool dies with its plugin", a.Pdeathsig)
	}
	if !a.Setpgid {
		t.Error("Setpgid is not set")
	}
}
