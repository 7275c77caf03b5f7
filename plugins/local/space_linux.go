package local

import "syscall"

// freeSpace returns the bytes available to unprivileged users on the
// filesystem holding dir: what a backup written by the agent can use.
func freeSpace(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	// Block counts are in fragment-size units; Bsize is only the preferred
	// I/O size, though the two are equal on most filesystems.
	unit := uint64(st.Frsize)
	if unit == 0 {
		unit = uint64(st.Bsize)
	}
	return uint64(st.Bavail) * unit, nil
}
