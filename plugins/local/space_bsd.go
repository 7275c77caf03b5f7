//go:build darwin || dragonfly || freebsd

package local

import "syscall"

// freeSpace returns the bytes available to unprivileged users on the
// filesystem holding dir: what a backup written by the agent can use.
func freeSpace(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return uint64(st.Bavail) * uint64(st.Bsize), nil
}
