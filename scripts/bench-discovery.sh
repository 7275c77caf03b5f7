#!/usr/bin/env bash
# Discovery scale benchmark: 500 labeled containers on the Docker engine, the
# real agent, and how fast their jobs (and then single new containers) show
# up in GET /jobs. See host/e2e/scale. Reports s-to-500-scheduled (target
# < 10 s), ms-new-container-scheduled (max of 5, target < 1 s) and its
# median, and the setup time of the 500 containers.
#
#   scripts/bench-discovery.sh [extra go test flags]
#
# Starts the engine first (scripts/docker-up.sh: needs root). Creating and
# removing 500 containers loads the shared engine for a minute or two: don't
# run it alongside the e2e tests. BENCH_COUNT repeats the whole benchmark.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$repo_root"
ensure_go
bash scripts/docker-up.sh
cd host
go test ./e2e/scale -run '^$' -bench '^BenchmarkDiscovery500$' -benchtime 1x \
	-count "${BENCH_COUNT:-1}" -timeout 30m -v "$@"
