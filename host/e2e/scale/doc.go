// Package scale holds the discovery scale benchmark: 500 labeled containers
// on the real Docker engine, the real agent, and how fast the jobs appear.
// It is a benchmark, so plain `go test` does not run it; run it with
// scripts/bench-discovery.sh (after scripts/docker-up.sh), or
//
//	cd host && go test ./e2e/scale -run '^$' -bench Discovery500 -benchtime 1x -v
//
// It has a package of its own because it floods the shared engine with
// containers and events: nothing else should run alongside it.
package scale
