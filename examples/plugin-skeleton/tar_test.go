package files

import (
	"archive/tar"
	"io"
)

func newTar(w io.Writer, name string, data []byte) *tar.Writer {
	tw := tar.NewWriter(w)
	tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg})
	tw.Write(data)
	return tw
}
