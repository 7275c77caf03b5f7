package sdk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pb "github.com/labelbackup/label-backup/sdk/internal/gen/labelbackup/plugin/v1"
)

// DumperClient is the host's handle on a dumper plugin process. It
// implements Dumper and Restorer over the wire.
type DumperClient struct {
	plugin pb.PluginServiceClient
	dumper pb.DumperServiceClient
	// broker serves the host's ExecService to the plugin for calls whose
	// context carries an ExecHandler (see WithExecHandler).
	broker *plugin.GRPCBroker
	feat   *features
}

// Describe asks the plugin what it is.
func (c *DumperClient) Describe(ctx context.Context) (Info, error) {
	return describe(ctx, c.plugin)
}

// Configure hands the plugin its settings.
func (c *DumperClient) Configure(ctx context.Context, settings map[string]string) error {
	return configure(ctx, c.plugin, settings)
}

// Validate checks the target's connection and credentials.
func (c *DumperClient) Validate(ctx context.Context, t Target) (ValidateResult, error) {
	execID, stopExec := serveExec(ctx, c.broker, t.Container.ID)
	defer stopExec()
	res, err := c.dumper.ValidateTarget(ctx, &pb.ValidateTargetRequest{Target: targetToProto(t), ExecBrokerId: execID})
	if err != nil {
		return ValidateResult{}, fromStatus("validate", err)
	}
	return ValidateResult{ServerVersion: res.GetServerVersion()}, nil
}

// Dump streams the target's dump into w. It fails unless the plugin ends the
// stream with a trailer whose byte count matches what arrived. When w fails,
// the dump is cancelled in the plugin.
func (c *DumperClient) Dump(ctx context.Context, t Target, w io.Writer) (DumpResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	execID, stopExec := serveExec(ctx, c.broker, t.Container.ID)
	defer stopExec()
	req := &pb.DumpRequest{Target: targetToProto(t), ChunkSize: DefaultChunkSize, ExecBrokerId: execID}
	var data *dataListener
	if c.feat.useDataSocket(ctx, c.plugin) {
		if d, err := listenData(); err == nil {
			data = d
			defer data.close()
			req.DataSocket = data.wire()
		}
	}
	stream, err := c.dumper.Dump(ctx, req)
	if err != nil {
		return DumpResult{}, fromStatus("dump", err)
	}
	var res DumpResult
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			return res, fmt.Errorf("dump: stream ended without a trailer after %d bytes: %w", res.Bytes, ErrIntegrity)
		}
		if err != nil {
			return res, fromStatus("dump", err)
		}
		switch m := msg.GetMsg().(type) {
		case *pb.DumpResponse_Header:
			res.Extension = m.Header.GetExtension()
			res.Format = m.Header.GetFormat()
			if data != nil {
				// The plugin connected before it sent the header; its bytes
				// end when it closes the socket, its outcome comes next.
				if err := receiveData(ctx, data, w, &res); err != nil {
					return res, err
				}
			}
		case *pb.DumpResponse_Data:
			if data != nil {
				return res, fmt.Errorf("dump: %w", errDataSocketMessage)
			}
			n, err := w.Write(m.Data)
			res.Bytes += int64(n)
			if err != nil {
				return res, fmt.Errorf("dump: writing output: %w", err)
			}
		case *pb.DumpResponse_Trailer:
			tr := m.Trailer
			if tr.GetBytes() != uint64(res.Bytes) {
				return res, fmt.Errorf("dump: trailer says %d bytes, received %d: %w", tr.GetBytes(), res.Bytes, ErrIntegrity)
			}
			if tr.GetFormat() != "" {
				res.Format = tr.GetFormat()
			}
			if tr.GetExtension() != "" {
				res.Extension = tr.GetExtension()
			}
			res.Warnings = tr.GetWarnings()
			if _, err := stream.Recv(); err != io.EOF {
				return res, fmt.Errorf("dump: data after the trailer: %w", ErrIntegrity)
			}
			return res, nil
		}
	}
}

// receiveData copies a dump's bytes from its data socket to w.
func receiveData(ctx context.Context, data *dataListener, w io.Writer, res *DumpResult) error {
	conn, err := data.accept(ctx)
	if err != nil {
		return fmt.Errorf("dump: %w", err)
	}
	defer conn.Close()
	p := newPrefetcher(conn)
	defer p.close()
	for {
		b, err := p.next()
		if err != nil {
			// EOF or a broken connection: the stream tells which, and the
			// trailer's byte count catches anything missing.
			return nil
		}
		n, err := w.Write(b)
		res.Bytes += int64(n)
		if err != nil {
			return fmt.Errorf("dump: writing output: %w", err)
		}
	}
}

// Restore streams r into the plugin's restore and waits for it to finish.
func (c *DumperClient) Restore(ctx context.Context, t Target, format string, r io.Reader) (RestoreResult, error) {
	w, err := c.OpenRestore(ctx, t, format)
	if err != nil {
		return RestoreResult{}, err
	}
	defer w.Abort()
	if _, err := io.Copy(w, r); err != nil {
		return RestoreResult{}, fmt.Errorf("restore: %w", err)
	}
	return w.Commit()
}

// RestoreWriter streams a restore into a dumper plugin. Write the raw dump,
// then Commit. Abort (safe after Commit, so defer it) cancels the restore.
type RestoreWriter struct {
	*upload
	stream pb.DumperService_RestoreClient
}

// OpenRestore starts a restore of t.
func (c *DumperClient) OpenRestore(ctx context.Context, t Target, format string) (*RestoreWriter, error) {
	ctx, cancelCtx := context.WithCancel(ctx)
	execID, stopExec := serveExec(ctx, c.broker, t.Container.ID)
	cancel := func() { cancelCtx(); stopExec() }
	stream, err := c.dumper.Restore(ctx)
	if err != nil {
		cancel()
		return nil, fromStatus("restore", err)
	}
	// A plugin that fails at once (no Restorer, say) may have ended the
	// stream already: send turns Send's io.EOF into its real error.
	out := sender{"restore", stream, func() any { return new(pb.RestoreResponse) }}
	err = out.send(&pb.RestoreRequest{Msg: &pb.RestoreRequest_Header{Header: &pb.RestoreHeader{
		Target: targetToProto(t), Format: format, ExecBrokerId: execID, TrailerCheck: uploadCheck,
	}}})
	if err != nil {
		cancel()
		return nil, err
	}
	w := &RestoreWriter{stream: stream}
	w.upload = newUpload(
		func(b []byte) error { return out.send(&pb.RestoreRequest{Msg: &pb.RestoreRequest_Data{Data: b}}) },
		func(tr *pb.StreamTrailer) error {
			return out.send(&pb.RestoreRequest{Msg: &pb.RestoreRequest_Trailer{Trailer: tr}})
		},
		cancel)
	return w, nil
}

// Commit ends the stream and waits for the plugin's restore to finish.
func (w *RestoreWriter) Commit() (RestoreResult, error) {
	defer w.cancel()
	if _, _, err := w.finish(); err != nil {
		return RestoreResult{}, err
	}
	res, err := w.stream.CloseAndRecv()
	if err != nil {
		return RestoreResult{}, fromStatus("restore", err)
	}
	return RestoreResult{Warnings: res.GetWarnings()}, nil
}

// Abort cancels the restore.
func (w *RestoreWriter) Abort() { w.abort() }

// SinkClient is the host's handle on a sink plugin process. It implements
// Sink over the wire.
type SinkClient struct {
	plugin pb.PluginServiceClient
	sink   pb.SinkServiceClient
	feat   *features
}

// Describe asks the plugin what it is.
func (c *SinkClient) Describe(ctx context.Context) (Info, error) {
	return describe(ctx, c.plugin)
}

// Configure hands the plugin its settings.
func (c *SinkClient) Configure(ctx context.Context, settings map[string]string) error {
	return configure(ctx, c.plugin, settings)
}

// CheckReady reports whether the storage is usable.
func (c *SinkClient) CheckReady(ctx context.Context) (string, error) {
	res, err := c.sink.CheckReady(ctx, &pb.CheckReadyRequest{})
	if err != nil {
		return "", fromStatus("check ready", err)
	}
	return res.GetDetail(), nil
}

// PutWriter streams one object into a sink. Write the data, then Commit.
// Abort cancels the upload and is safe after Commit, so defer it: the object
// appears only if Commit succeeds.
type PutWriter struct {
	*upload
	stream pb.SinkService_PutClient
	key    string
	// data is set when the bytes go through a data socket.
	data *dataSocketUpload
}

type putResult struct {
	res *pb.PutResponse
	err error
}

// OpenPut starts storing an object under req.Key.
func (c *SinkClient) OpenPut(ctx context.Context, req PutRequest) (*PutWriter, error) {
	ctx, cancel := context.WithCancel(ctx)
	var data *dataListener
	if c.feat.useDataSocket(ctx, c.plugin) {
		if d, err := listenData(); err == nil {
			data = d
		}
	}
	fail := func(err error) (*PutWriter, error) {
		cancel()
		if data != nil {
			data.close()
		}
		return nil, err
	}
	stream, err := c.sink.Put(ctx)
	if err != nil {
		return fail(fromStatus("put", err))
	}
	hdr := &pb.PutHeader{Key: req.Key, ContentType: req.ContentType, TrailerCheck: uploadCheck}
	if data != nil {
		hdr.DataSocket = data.wire()
	}
	out := sender{"put", stream, func() any { return new(pb.PutResponse) }}
	if err := out.send(&pb.PutRequest{Msg: &pb.PutRequest_Header{Header: hdr}}); err != nil {
		return fail(err)
	}
	w := &PutWriter{stream: stream, key: req.Key}
	if data == nil {
		w.upload = newUpload(
			func(b []byte) error { return out.send(&pb.PutRequest{Msg: &pb.PutRequest_Data{Data: b}}) },
			func(tr *pb.StreamTrailer) error {
				return out.send(&pb.PutRequest{Msg: &pb.PutRequest_Trailer{Trailer: tr}})
			},
			cancel)
		return w, nil
	}
	// The sink's response is received from the start, so that a sink that
	// fails early is noticed while waiting for its connection.
	result := make(chan putResult, 1)
	go func() {
		res := new(pb.PutResponse)
		err := stream.RecvMsg(res)
		result <- putResult{res, err}
	}()
	w.data = &dataSocketUpload{ctx: ctx, listener: data, result: result}
	w.upload = newUpload(w.data.write, func(tr *pb.StreamTrailer) error {
		if err := w.data.end(); err != nil {
			return err
		}
		if err := stream.Send(&pb.PutRequest{Msg: &pb.PutRequest_Trailer{Trailer: tr}}); err != nil {
			return w.data.failure(err)
		}
		return nil
	}, func() {
		cancel()
		w.data.abort()
	})
	return w, nil
}

// dataSocketUpload sends a Put's bytes through its data socket.
type dataSocketUpload struct {
	ctx      context.Context
	listener *dataListener
	result   <-chan putResult
	conn     net.Conn
	ended    *putResult
	mu       sync.Mutex // guards conn against abort from another goroutine
}

// connect waits for the sink's connection, or for the sink to end the
// call (it failed before connecting).
func (d *dataSocketUpload) connect() error {
	if d.conn != nil {
		return nil
	}
	accepted := make(chan error, 1)
	go func() {
		c, err := d.listener.accept(d.ctx)
		if err == nil {
			d.mu.Lock()
			d.conn = c
			d.mu.Unlock()
		}
		accepted <- err
	}()
	select {
	case err := <-accepted:
		return err
	case r := <-d.result:
		d.ended = &r
		d.listener.close()
		<-accepted
		return d.failure(errors.New("the sink ended the upload before taking its data"))
	}
}

func (d *dataSocketUpload) write(b []byte) error {
	if err := d.connect(); err != nil {
		return err
	}
	if _, err := d.conn.Write(b); err != nil {
		return d.failure(err)
	}
	return nil
}

// end closes the data socket: the sink sees the end of the bytes.
func (d *dataSocketUpload) end() error {
	if err := d.connect(); err != nil {
		return err
	}
	if err := d.conn.Close(); err != nil {
		return d.failure(err)
	}
	return nil
}

// outcome waits up to wait for the sink's response (forever when wait
// is 0) and remembers it; nil when it has not come.
func (d *dataSocketUpload) outcome(wait time.Duration) *putResult {
	if d.ended != nil {
		return d.ended
	}
	var timeout <-chan time.Time
	if wait > 0 {
		timeout = time.After(wait)
	}
	select {
	case r := <-d.result:
		d.ended = &r
	case <-timeout:
	}
	return d.ended
}

// failure explains a failed send: by the sink's own status when it ended
// the call (waiting a moment for it), else by err.
func (d *dataSocketUpload) failure(err error) error {
	d.outcome(2 * time.Second)
	if d.ended != nil && d.ended.err != nil && d.ended.err != io.EOF {
		return fromStatus("put", d.ended.err)
	}
	return fmt.Errorf("put: data socket: %w", err)
}

func (d *dataSocketUpload) abort() {
	d.listener.close()
	d.mu.Lock()
	if d.conn != nil {
		d.conn.Close()
	}
	d.mu.Unlock()
}

// Commit sends the trailer and waits for the sink to make the object
// visible. The returned ObjectInfo carries the size and sha256 computed here.
func (w *PutWriter) Commit() (ObjectInfo, error) {
	defer w.cancel()
	size, digest, err := w.finish()
	if err != nil {
		return ObjectInfo{}, err
	}
	var res *pb.PutResponse
	if w.data == nil {
		if res, err = w.stream.CloseAndRecv(); err != nil {
			return ObjectInfo{}, fromStatus("put", err)
		}
	} else {
		if err := w.stream.CloseSend(); err != nil {
			return ObjectInfo{}, w.data.failure(err)
		}
		r := w.data.outcome(0)
		if r.err != nil {
			return ObjectInfo{}, fromStatus("put", r.err)
		}
		res = r.res
	}
	obj := objectFromProto(res.GetObject())
	if obj.Size != size {
		return obj, fmt.Errorf("put %q: sink stored %d bytes, sent %d: %w", w.key, obj.Size, size, ErrIntegrity)
	}
	if len(obj.SHA256) > 0 && !bytes.Equal(obj.SHA256, digest) {
		return obj, fmt.Errorf("put %q: sink's sha256 differs from the data sent: %w", w.key, ErrIntegrity)
	}
	obj.SHA256 = digest
	return obj, nil
}

// Abort cancels the upload; nothing becomes visible.
func (w *PutWriter) Abort() { w.abort() }

// Put stores everything r yields under req.Key.
func (c *SinkClient) Put(ctx context.Context, req PutRequest, r io.Reader) (ObjectInfo, error) {
	w, err := c.OpenPut(ctx, req)
	if err != nil {
		return ObjectInfo{}, err
	}
	defer w.Abort()
	if _, err := io.Copy(w, r); err != nil {
		return ObjectInfo{}, fmt.Errorf("put %q: %w", req.Key, err)
	}
	return w.Commit()
}

// Get streams the object's bytes into w, checking the sink's trailer.
func (c *SinkClient) Get(ctx context.Context, key string, w io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.sink.Get(ctx, &pb.GetRequest{Key: key, ChunkSize: DefaultChunkSize})
	if err != nil {
		return fromStatus("get", err)
	}
	var n uint64
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			return fmt.Errorf("get %q: stream ended without a trailer after %d bytes: %w", key, n, ErrIntegrity)
		}
		if err != nil {
			return fromStatus("get", err)
		}
		if tr := msg.GetTrailer(); tr != nil {
			if tr.GetSize() != n {
				return fmt.Errorf("get %q: trailer says %d bytes, received %d: %w", key, tr.GetSize(), n, ErrIntegrity)
			}
			return nil
		}
		k, err := w.Write(msg.GetData())
		n += uint64(k)
		if err != nil {
			return fmt.Errorf("get %q: writing output: %w", key, err)
		}
	}
}

// List returns one page of objects under req.Prefix.
func (c *SinkClient) List(ctx context.Context, req ListRequest) (ListPage, error) {
	res, err := c.sink.List(ctx, &pb.ListRequest{
		Prefix: req.Prefix, PageToken: req.PageToken, PageSize: uint32(max(req.PageSize, 0)),
	})
	if err != nil {
		return ListPage{}, fromStatus("list", err)
	}
	page := ListPage{NextPageToken: res.GetNextPageToken()}
	for _, o := range res.GetObjects() {
		page.Objects = append(page.Objects, objectFromProto(o))
	}
	return page, nil
}

// Stat describes one object.
func (c *SinkClient) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	res, err := c.sink.Stat(ctx, &pb.StatRequest{Key: key})
	if err != nil {
		return ObjectInfo{}, fromStatus("stat", err)
	}
	return objectFromProto(res.GetObject()), nil
}

// Delete removes one object.
func (c *SinkClient) Delete(ctx context.Context, key string) error {
	if _, err := c.sink.Delete(ctx, &pb.DeleteRequest{Key: key}); err != nil {
		return fromStatus("delete", err)
	}
	return nil
}

func describe(ctx context.Context, c pb.PluginServiceClient) (Info, error) {
	res, err := c.Describe(ctx, &pb.DescribeRequest{})
	if err != nil {
		return Info{}, fromStatus("describe", err)
	}
	return infoFromProto(res), nil
}

func configure(ctx context.Context, c pb.PluginServiceClient, settings map[string]string) error {
	if _, err := c.Configure(ctx, &pb.ConfigureRequest{Settings: settings}); err != nil {
		return fromStatus("configure", err)
	}
	return nil
}

// sender sends on a client stream. When the plugin has already ended the
// call, Send says only io.EOF: the real error is the stream's status, which
// receiving (into a fresh response) returns.
type sender struct {
	op      string
	stream  grpc.ClientStream
	newResp func() any
}

func (o sender) send(msg any) error {
	err := o.stream.SendMsg(msg)
	if err != io.EOF {
		if err != nil {
			return fromStatus(o.op, err)
		}
		return nil
	}
	if rerr := o.stream.RecvMsg(o.newResp()); rerr != nil && rerr != io.EOF {
		return fromStatus(o.op, rerr)
	}
	return fmt.Errorf("%s: plugin closed the stream early: %w", o.op, ErrUnavailable)
}
