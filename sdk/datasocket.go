package sdk

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	pb "github.com/labelbackup/label-backup/sdk/internal/gen/labelbackup/plugin/v1"
)

// featureDataSocket is the SDK feature (DescribeResponse.sdk_features) of
// plugins that take the bulk bytes of Put and Dump over a Unix socket the
// host names (pb.DataSocket) instead of as gRPC messages. Measured on 2
// cores, a 512 MiB upload through a plugin costs about 0.8 CPU-seconds of
// HTTP/2 framing and message copies on top of the storage work; the same
// bytes through a Unix socket cost about 0.06.
const featureDataSocket = "data-socket"

// sdkFeatures are the features this SDK's plugin side supports.
var sdkFeatures = []string{featureDataSocket}

// features remembers whether a plugin's SDK takes a data socket, asked
// once per client (an answer only: a failed ask is asked again).
type features struct {
	mu         sync.Mutex
	known      bool
	dataSocket bool
	// disabled turns the data socket off (tests of the message path).
	disabled bool
}

func (f *features) useDataSocket(ctx context.Context, plugin pb.PluginServiceClient) bool {
	if f.disabled {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.known {
		// A plugin that cannot answer gets the message path, which every
		// plugin speaks.
		info, err := describe(ctx, plugin)
		if err != nil {
			return false
		}
		f.known, f.dataSocket = true, slices.Contains(info.SDKFeatures, featureDataSocket)
	}
	return f.dataSocket
}

// tokenSize is the length of a data socket's token.
const tokenSize = 16

// tokenTimeout bounds how long a connection to a data socket may take to
// present its token.
const tokenTimeout = 10 * time.Second

// dataListener is the host's end of one call's data socket: a Unix socket
// in a fresh private directory that accepts one connection presenting the
// token.
type dataListener struct {
	dir   string
	ln    *net.UnixListener
	token []byte
	once  sync.Once
}

// listenData opens a data socket. Failing (no writable temporary
// directory, say) only means the call uses messages.
func listenData() (*dataListener, error) {
	dir, err := os.MkdirTemp("", "lb-data-") // mode 0700
	if err != nil {
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Net: "unix", Name: filepath.Join(dir, "s")})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	ln.SetUnlinkOnClose(true)
	d := &dataListener{dir: dir, ln: ln, token: make([]byte, tokenSize)}
	if _, err := rand.Read(d.token); err != nil {
		d.close()
		return nil, err
	}
	return d, nil
}

func (d *dataListener) wire() *pb.DataSocket {
	return &pb.DataSocket{Path: d.ln.Addr().String(), Token: d.token}
}

// close stops listening and removes the socket's directory. It is safe to
// call more than once and while accept waits (which then fails).
func (d *dataListener) close() {
	d.once.Do(func() {
		d.ln.Close()
		os.RemoveAll(d.dir)
	})
}

// accept waits for the plugin's connection, skipping any that does not
// present the token, then stops listening. It fails when ctx is done or
// the listener is closed.
func (d *dataListener) accept(ctx context.Context) (net.Conn, error) {
	stop := context.AfterFunc(ctx, d.close)
	defer stop()
	defer d.close()
	for {
		c, err := d.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("data socket: %w", err)
		}
		got := make([]byte, tokenSize)
		_ = c.SetReadDeadline(time.Now().Add(tokenTimeout))
		_, err = io.ReadFull(c, got)
		_ = c.SetReadDeadline(time.Time{})
		if err == nil && subtle.ConstantTimeCompare(got, d.token) == 1 {
			return c, nil
		}
		c.Close()
	}
}

// dialData is the plugin's end: it connects to the host's data socket and
// presents the token.
func dialData(ctx context.Context, ds *pb.DataSocket) (net.Conn, error) {
	if !filepath.IsAbs(ds.GetPath()) || len(ds.GetToken()) != tokenSize {
		return nil, fmt.Errorf("data socket %q: not an absolute path with a token: %w", ds.GetPath(), ErrInvalidArgument)
	}
	var dialer net.Dialer
	c, err := dialer.DialContext(ctx, "unix", ds.GetPath())
	if err != nil {
		return nil, fmt.Errorf("connecting to the host's data socket: %w", err)
	}
	if _, err := c.Write(ds.GetToken()); err != nil {
		c.Close()
		return nil, fmt.Errorf("connecting to the host's data socket: %w", err)
	}
	return c, nil
}

// errDataSocketMessage reports a data message on a call whose data go
// through the data socket.
var errDataSocketMessage = fmt.Errorf("data message on a call whose data use the data socket: %w", ErrInvalidArgument)

// prefetchChunks is how many chunks a data socket's reader reads ahead of
// its consumer: the part gRPC's flow-control window (4 MiB a stream) plays
// for messages. A Unix socket itself buffers only ~200 KiB, so without it
// the sender stalls whenever the consumer works: a PostgreSQL dump with
// compression off went from 140 to 111 MB/s.
const prefetchChunks = 6

// prefetcher reads r ahead of its consumer into up to prefetchChunks full
// chunks of DefaultChunkSize.
type prefetcher struct {
	full chan prefetched
	free chan []byte
	stop chan struct{}
	last []byte
}

type prefetched struct {
	b   []byte
	err error
}

func newPrefetcher(r io.Reader) *prefetcher {
	p := &prefetcher{
		full: make(chan prefetched, prefetchChunks+1), // never blocks: see run
		free: make(chan []byte, prefetchChunks),
		stop: make(chan struct{}),
	}
	for range prefetchChunks {
		p.free <- nil // allocated on first use
	}
	go p.run(r)
	return p
}

// run fills free chunks until r ends or fails. At most prefetchChunks
// chunks and one error are ever queued, so sends to full never block.
func (p *prefetcher) run(r io.Reader) {
	for {
		var b []byte
		select {
		case b = <-p.free:
		case <-p.stop:
			return
		}
		if b == nil {
			b = make([]byte, DefaultChunkSize)
		}
		n, err := io.ReadFull(r, b[:cap(b)])
		if n > 0 {
			p.full <- prefetched{b: b[:n]}
		}
		if err != nil {
			if err == io.ErrUnexpectedEOF {
				err = io.EOF
			}
			p.full <- prefetched{err: err}
			return
		}
	}
}

// next returns the next chunk, valid until the following call, or the
// read's end (io.EOF) or failure.
func (p *prefetcher) next() ([]byte, error) {
	if p.last != nil {
		p.free <- p.last
		p.last = nil
	}
	c := <-p.full
	if c.err != nil {
		p.full <- c // sticky
		return nil, c.err
	}
	p.last = c.b
	return c.b, nil
}

// close stops reading ahead; close the connection too, so that a read in
// progress ends.
func (p *prefetcher) close() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
}
