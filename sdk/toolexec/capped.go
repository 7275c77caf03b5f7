package toolexec

import "bytes"

// CappedBuffer collects a tool's short output (a version, a query's
// answer, a secret file) up to Limit bytes and silently drops the rest, so
// a tool that says more than expected can neither stall on a full pipe
// nor bloat the plugin.
type CappedBuffer struct {
	Limit int
	buf   bytes.Buffer
}

// Write keeps what fits and always reports the whole of p as written.
func (c *CappedBuffer) Write(p []byte) (int, error) {
	if room := c.Limit - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// String returns what was kept.
func (c *CappedBuffer) String() string { return c.buf.String() }

// Bytes returns what was kept.
func (c *CappedBuffer) Bytes() []byte { return c.buf.Bytes() }

// Len is the number of bytes kept.
func (c *CappedBuffer) Len() int { return c.buf.Len() }
