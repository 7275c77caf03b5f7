// Package sdk is what a Label Backup plugin is written against.
//
// A dumper plugin knows one database engine; a sink plugin knows one storage.
// Each is a separate binary whose main is one call:
//
//	func main() { sdk.ServeDumper(mydb.New()) }
//
// Plugin authors implement the plain Go interfaces [Dumper] (and optionally
// [Restorer]) or [Sink] over io.Writer and io.Reader. Framing, chunking,
// trailers, checksums, error codes and logging are handled here; the wire
// protocol (gRPC over hashicorp/go-plugin) never shows in these interfaces.
//
// # Exec mode
//
// When a job runs in exec mode (Target.Options["mode"] == "exec"), the host
// offers the plugin an [Executor] for the call: [Exec](ctx) returns it, and
// its Run runs a command inside the database's own container (Docker exec,
// done by the host over go-plugin's broker; the plugin never sees the
// Docker socket and can reach no other container). Run has the semantics
// of toolexec.Run, and toolexec.RunWith(ctx, ex, cmd) runs locally when ex
// is nil, so one code path serves both modes. Secrets go in Command.Env,
// never in Argv. On the host side, [WithExecHandler] makes the
// DumperClient calls offer an [ExecHandler].
//
// The host uses the client side of the same package ([DumperClient],
// [SinkClient]) and the conformance kit in package sdktest checks a plugin
// against the contracts documented on each interface.
package sdk
