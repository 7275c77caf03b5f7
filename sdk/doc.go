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
// The host uses the client side of the same package ([DumperClient],
// [SinkClient]) and the conformance kit in package sdktest checks a plugin
// against the contracts documented on each interface.
package sdk
