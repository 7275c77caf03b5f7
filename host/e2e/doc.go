// Package e2e holds end-to-end tests: the real agent binary and real plugin
// binaries against a real Docker engine and real databases in labeled
// containers. Run scripts/docker-up.sh first (make test does).
package e2e
