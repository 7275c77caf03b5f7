// Command idle is the main process of the scale benchmark's containers: it
// does nothing until SIGTERM or SIGINT, then exits 0, so `docker stop` needs
// no grace period. As PID 1 in a container it must handle the signals
// itself (the kernel ignores unhandled ones for PID 1). Built static
// (CGO_ENABLED=0) into a FROM scratch image.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
}
