package sdk_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/labelbackup/label-backup/sdk"
	pb "github.com/labelbackup/label-backup/sdk/internal/gen/labelbackup/plugin/v1"
)

// startTestPlugin builds internal/testplugin and launches it the way the
// host does, returning a raw client on its gRPC connection.
func startTestPlugin(t *testing.T) (pb.SinkServiceClient, *sdk.SinkClient, string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "label-backup-plugin-memory")
	if out, err := exec.Command("go", "build", "-o", bin, "./internal/testplugin").CombinedOutput(); err != nil {
		t.Fatalf("building the test plugin: %v\n%s", err, out)
	}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake(),
		VersionedPlugins: sdk.ClientPlugins(),
		Cmd:              exec.Command(bin),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		GRPCDialOptions:  sdk.DialOptions(),
		Logger:           hclog.NewNullLogger(),
	})
	t.Cleanup(client.Kill)
	rpc, err := client.Client()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := rpc.Dispense("sink")
	if err != nil {
		t.Fatal(err)
	}
	conn := rpc.(*plugin.GRPCClient).Conn
	return pb.NewSinkServiceClient(conn), raw.(*sdk.SinkClient), bin
}

// TestServeAcceptsLargeMessages: the plugin-side server takes a data
// message above gRPC's default 4 MiB limit plus framing, and refuses one
// above its own 16 MiB limit with a clear code instead of crashing.
func TestServeAcceptsLargeMessages(t *testing.T) {
	raw, client, _ := startTestPlugin(t)
	for _, tc := range []struct {
		name string
		size int
		want codes.Code
	}{
		{"5 MiB", 5 << 20, codes.OK},
		{"4 MiB exactly", 4 << 20, codes.OK},
		{"20 MiB", 20 << 20, codes.ResourceExhausted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := bytes.Repeat([]byte{7}, tc.size)
			sum := sha256.Sum256(data)
			stream, err := raw.Put(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			stream.Send(&pb.PutRequest{Msg: &pb.PutRequest_Header{Header: &pb.PutHeader{Key: "big/" + tc.name}}})
			stream.Send(&pb.PutRequest{Msg: &pb.PutRequest_Data{Data: data}})
			stream.Send(&pb.PutRequest{Msg: &pb.PutRequest_Trailer{Trailer: &pb.StreamTrailer{Size: uint64(tc.size), Sha256: sum[:]}}})
			_, err = stream.CloseAndRecv()
			if got := status.Code(err); got != tc.want {
				t.Fatalf("put of one %d-byte message: code %v (%v), want %v", tc.size, got, err, tc.want)
			}
		})
	}
	// The connection survives a refused message.
	if _, err := client.CheckReady(context.Background()); err != nil {
		t.Fatalf("plugin unusable after a refused message: %v", err)
	}
}

func TestDescribeVerb(t *testing.T) {
	_, _, bin := startTestPlugin(t)
	out, err := exec.Command(bin, "describe").Output()
	if err != nil {
		t.Fatal(err)
	}
	var info sdk.Info
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("describe printed %q: %v", out, err)
	}
	if info.Name != "memory" || info.Kind != sdk.KindSink || info.ProtocolVersion != sdk.ProtocolVersion {
		t.Errorf("describe = %+v", info)
	}
	// Run by hand without the handshake, the binary explains itself.
	if err := exec.Command(bin).Run(); err == nil {
		t.Error("plugin ran without the host's handshake")
	}
}
