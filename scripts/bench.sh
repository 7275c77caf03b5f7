#!/usr/bin/env bash
# Benchmarks ("make bench"): whole backups through real plugin processes
# (none, gzip, zstd) against single-threaded gzip -6 on the same stream.
# BENCH_SIZE (bytes, default 1 GiB) sets the dump size.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$repo_root"
ensure_go
cd host
go test ./internal/pipeline -run '^$' -bench 'Pipeline|Hops|ReferenceGzip' -benchtime 1x -count "${BENCH_COUNT:-1}"
