package sdktest

import (
	"testing"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/labelbackup/label-backup/sdk"
)

// DumperClient serves d in-process through the real gRPC shims and returns
// the client the host would use.
func DumperClient(t testing.TB, d sdk.Dumper) *sdk.DumperClient {
	t.Helper()
	raw := dispense(t, "dumper", &sdk.DumperPlugin{Impl: d})
	c, ok := raw.(*sdk.DumperClient)
	if !ok {
		t.Fatalf("dispensed %T, want *sdk.DumperClient", raw)
	}
	return c
}

// SinkClient serves s in-process through the real gRPC shims and returns
// the client the host would use.
func SinkClient(t testing.TB, s sdk.Sink) *sdk.SinkClient {
	t.Helper()
	c, _ := sinkConn(t, s)
	return c
}

func sinkConn(t testing.TB, s sdk.Sink) (*sdk.SinkClient, *grpc.ClientConn) {
	t.Helper()
	client, _ := plugin.TestPluginGRPCConn(t, false, map[string]plugin.Plugin{"sink": &sdk.SinkPlugin{Impl: s}})
	// Closing the client asks the server to stop through go-plugin's
	// controller; stopping it here as well would race with that.
	t.Cleanup(func() { client.Close() })
	raw, err := client.Dispense("sink")
	if err != nil {
		t.Fatalf("dispense sink: %v", err)
	}
	c, ok := raw.(*sdk.SinkClient)
	if !ok {
		t.Fatalf("dispensed %T, want *sdk.SinkClient", raw)
	}
	return c, client.Conn
}

func dispense(t testing.TB, name string, p plugin.Plugin) any {
	t.Helper()
	client, _ := plugin.TestPluginGRPCConn(t, false, map[string]plugin.Plugin{name: p})
	t.Cleanup(func() { client.Close() })
	raw, err := client.Dispense(name)
	if err != nil {
		t.Fatalf("dispense %s: %v", name, err)
	}
	return raw
}
