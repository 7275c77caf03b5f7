package sdk

import (
	"context"
	"fmt"
	"io"
	"net"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/labelbackup/label-backup/sdk/internal/gen/labelbackup/plugin/v1"
)

// pluginServer serves PluginService for a dumper or a sink.
type pluginServer struct {
	pb.UnimplementedPluginServiceServer
	info   func() Info
	impl   any
	logger hclog.Logger
}

func (s *pluginServer) Describe(context.Context, *pb.DescribeRequest) (*pb.DescribeResponse, error) {
	return infoToProto(completeInfo(s.info())), nil
}

func (s *pluginServer) Configure(ctx context.Context, req *pb.ConfigureRequest) (*pb.ConfigureResponse, error) {
	c, ok := s.impl.(Configurer)
	if !ok {
		return &pb.ConfigureResponse{}, nil
	}
	if err := c.Configure(withLogger(ctx, s.logger), req.GetSettings()); err != nil {
		return nil, toStatus(fmt.Errorf("configure: %w", err))
	}
	return &pb.ConfigureResponse{}, nil
}

// completeInfo fills in what the SDK, not the author, knows.
func completeInfo(i Info) Info {
	i.ProtocolVersion = ProtocolVersion
	i.SDKVersion = Version
	i.SDKFeatures = sdkFeatures
	return i
}

// dumperServer adapts a Dumper to DumperService.
type dumperServer struct {
	pb.UnimplementedDumperServiceServer
	impl   Dumper
	logger hclog.Logger
	calls  *inflight
	// broker dials the host's ExecService when a request offers one.
	broker *plugin.GRPCBroker
}

func (s *dumperServer) ValidateTarget(ctx context.Context, req *pb.ValidateTargetRequest) (*pb.ValidateTargetResponse, error) {
	ctx, closeExec := withRemoteExecutor(ctx, s.broker, req.GetExecBrokerId())
	defer closeExec()
	res, err := s.impl.Validate(withLogger(ctx, s.logger), targetFromProto(req.GetTarget()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.ValidateTargetResponse{ServerVersion: res.ServerVersion}, nil
}

func (s *dumperServer) Dump(req *pb.DumpRequest, stream pb.DumperService_DumpServer) error {
	defer s.calls.start()()
	ctx, closeExec := withRemoteExecutor(stream.Context(), s.broker, req.GetExecBrokerId())
	defer closeExec()
	ctx = withLogger(ctx, s.logger)
	info := s.impl.Info()
	var err error
	send := func(b []byte) error {
		return stream.Send(&pb.DumpResponse{Msg: &pb.DumpResponse_Data{Data: b}})
	}
	var conn net.Conn
	if ds := req.GetDataSocket(); ds != nil {
		if conn, err = dialData(ctx, ds); err != nil {
			return toStatus(err)
		}
		// Closed on every path: the host then sees the end of the bytes and
		// takes the outcome from the stream.
		defer conn.Close()
		send = func(b []byte) error {
			_, err := conn.Write(b)
			return err
		}
	}
	err = stream.Send(&pb.DumpResponse{Msg: &pb.DumpResponse_Header{Header: &pb.DumpHeader{
		Extension: info.DefaultExtension,
	}}})
	if err != nil {
		return err
	}
	w := newChunkWriter(chunkSize(req.GetChunkSize()), send)
	res, err := s.impl.Dump(ctx, targetFromProto(req.GetTarget()), w)
	if err == nil {
		err = w.Flush()
	}
	if err == nil && conn != nil {
		err = conn.Close()
	}
	if err == nil && ctx.Err() != nil {
		err = fmt.Errorf("dump returned after cancellation: %w", ctx.Err())
	}
	if err == nil && w.n == 0 {
		err = ErrEmptyDump
	}
	if err != nil {
		return toStatus(err)
	}
	return stream.Send(&pb.DumpResponse{Msg: &pb.DumpResponse_Trailer{Trailer: &pb.DumpTrailer{
		Bytes:     uint64(w.n),
		Warnings:  res.Warnings,
		Format:    res.Format,
		Extension: res.Extension,
	}}})
}

func (s *dumperServer) Restore(stream pb.DumperService_RestoreServer) error {
	defer s.calls.start()()
	r, ok := s.impl.(Restorer)
	if !ok {
		return status.Error(codes.Unimplemented, "restore: this plugin cannot restore")
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	hdr := first.GetHeader()
	if hdr == nil {
		return status.Error(codes.InvalidArgument, "restore: first message must be a header")
	}
	body := newTrailerReader(hdr.GetTrailerCheck(), func() ([]byte, *pb.StreamTrailer, error) {
		m, err := stream.Recv()
		if err != nil {
			return nil, nil, err
		}
		if m.GetHeader() != nil {
			return nil, nil, fmt.Errorf("second header in stream: %w", ErrInvalidArgument)
		}
		return m.GetData(), m.GetTrailer(), nil
	})
	ctx, closeExec := withRemoteExecutor(stream.Context(), s.broker, hdr.GetExecBrokerId())
	defer closeExec()
	ctx = withLogger(ctx, s.logger)
	res, err := r.Restore(ctx, targetFromProto(hdr.GetTarget()), hdr.GetFormat(), body)
	if err == nil && !body.verified {
		// Tools like pg_restore stop at the end of their archive; read on to
		// the trailer so a corrupt or truncated upload still fails.
		if _, derr := io.Copy(io.Discard, body); derr != nil {
			err = fmt.Errorf("restore input: %w", derr)
		}
	}
	if err != nil {
		return toStatus(err)
	}
	return stream.SendAndClose(&pb.RestoreResponse{Warnings: res.Warnings})
}

// sinkServer adapts a Sink to SinkService.
type sinkServer struct {
	pb.UnimplementedSinkServiceServer
	impl   Sink
	logger hclog.Logger
	calls  *inflight
}

func (s *sinkServer) CheckReady(ctx context.Context, _ *pb.CheckReadyRequest) (*pb.CheckReadyResponse, error) {
	detail, err := s.impl.CheckReady(withLogger(ctx, s.logger))
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.CheckReadyResponse{Detail: detail}, nil
}

func (s *sinkServer) Put(stream pb.SinkService_PutServer) error {
	defer s.calls.start()()
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	hdr := first.GetHeader()
	if hdr == nil {
		return status.Error(codes.InvalidArgument, "put: first message must be a header")
	}
	next := func() ([]byte, *pb.StreamTrailer, error) {
		m, err := stream.Recv()
		if err != nil {
			return nil, nil, err
		}
		if m.GetHeader() != nil {
			return nil, nil, fmt.Errorf("second header in stream: %w", ErrInvalidArgument)
		}
		return m.GetData(), m.GetTrailer(), nil
	}
	if ds := hdr.GetDataSocket(); ds != nil {
		conn, err := dialData(stream.Context(), ds)
		if err != nil {
			return toStatus(err)
		}
		defer conn.Close()
		var stop func()
		next, stop = socketNext(conn, next)
		defer stop()
	}
	body := newTrailerReader(hdr.GetTrailerCheck(), next)
	ctx := withLogger(stream.Context(), s.logger)
	obj, err := s.impl.Put(ctx, PutRequest{Key: hdr.GetKey(), ContentType: hdr.GetContentType()}, body)
	if err == nil && !body.verified {
		// The sink broke its contract: it returned before the trailer was
		// checked. Say so loudly; the conformance kit catches this too.
		err = fmt.Errorf("put %q: sink returned before the upload's trailer was verified: %w", hdr.GetKey(), ErrIntegrity)
	}
	if err != nil {
		return toStatus(err)
	}
	if obj.Key == "" {
		obj.Key = hdr.GetKey()
	}
	if obj.Size == 0 {
		obj.Size = int64(body.n)
	}
	if len(obj.SHA256) == 0 {
		obj.SHA256 = body.digest
	}
	return stream.SendAndClose(&pb.PutResponse{Object: objectToProto(obj)})
}

func (s *sinkServer) Get(req *pb.GetRequest, stream pb.SinkService_GetServer) error {
	defer s.calls.start()()
	ctx := withLogger(stream.Context(), s.logger)
	w := newChunkWriter(chunkSize(req.GetChunkSize()), func(b []byte) error {
		return stream.Send(&pb.GetResponse{Msg: &pb.GetResponse_Data{Data: b}})
	})
	err := s.impl.Get(ctx, req.GetKey(), w)
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		return toStatus(err)
	}
	return stream.Send(&pb.GetResponse{Msg: &pb.GetResponse_Trailer{Trailer: &pb.GetTrailer{Size: uint64(w.n)}}})
}

func (s *sinkServer) List(ctx context.Context, req *pb.ListRequest) (*pb.ListResponse, error) {
	page, err := s.impl.List(withLogger(ctx, s.logger), ListRequest{
		Prefix: req.GetPrefix(), PageToken: req.GetPageToken(), PageSize: int(req.GetPageSize()),
	})
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.ListResponse{NextPageToken: page.NextPageToken}
	for _, o := range page.Objects {
		out.Objects = append(out.Objects, objectToProto(o))
	}
	return out, nil
}

func (s *sinkServer) Stat(ctx context.Context, req *pb.StatRequest) (*pb.StatResponse, error) {
	obj, err := s.impl.Stat(withLogger(ctx, s.logger), req.GetKey())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.StatResponse{Object: objectToProto(obj)}, nil
}

func (s *sinkServer) Delete(ctx context.Context, req *pb.DeleteRequest) (*pb.DeleteResponse, error) {
	defer s.calls.start()()
	if err := s.impl.Delete(withLogger(ctx, s.logger), req.GetKey()); err != nil {
		return nil, toStatus(err)
	}
	return &pb.DeleteResponse{}, nil
}

// socketNext reads an upload's data from its data socket until the host
// closes it, then takes the trailer from the stream, where no data message
// may come.
func socketNext(conn io.Reader, messages func() ([]byte, *pb.StreamTrailer, error)) (next func() ([]byte, *pb.StreamTrailer, error), stop func()) {
	p := newPrefetcher(conn)
	eof := false
	return func() ([]byte, *pb.StreamTrailer, error) {
		if !eof {
			b, err := p.next()
			switch {
			case err == nil:
				return b, nil, nil
			case err != io.EOF:
				return nil, nil, fmt.Errorf("data socket: %w", err)
			}
			eof = true
		}
		data, tr, err := messages()
		if err == nil && tr == nil && len(data) > 0 {
			err = errDataSocketMessage
		}
		return data, tr, err
	}, p.close
}
