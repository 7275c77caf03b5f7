// Package sdktest is the conformance kit for Label Backup plugins.
//
// Third-party plugin authors call RunSinkSuite or RunDumperSuite from their
// tests. The suites drive the plugin through the real gRPC shims in-process
// (no binary is built), so framing, trailers, error codes and cancellation
// are all exercised exactly as the host exercises them.
//
// The package also has fakes for host-side tests: MemorySink, an in-memory
// sink that honours the whole Sink contract, and RandomDumper, which dumps a
// deterministic pseudo-random stream of a chosen size.
package sdktest
