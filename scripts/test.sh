#!/usr/bin/env bash
# Runs every test of the project (this is what "make test" and CI run):
# installs and starts what the tests need (Debian packages, a Docker engine,
# the protobuf tools), checks the protocol and formatting, builds each module
# on its own, builds the binaries once, then runs every module's tests with
# the race detector.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$repo_root"
ensure_go
eval "$(bash scripts/install-deps.sh --with-mongo --with-s3 --print-path)"
bash scripts/docker-up.sh

modules=(sdk host plugins/local plugins/mongodb plugins/mysql plugins/postgres plugins/redis plugins/s3
	examples/plugin-skeleton examples/plugin-sqlite examples/webhook-receiver examples/compose)

bash scripts/proto-check.sh

log "gofmt"
unformatted=$(git ls-files '*.go' | grep -v '/internal/gen/' | xargs gofmt -l)
[[ -z $unformatted ]] || die "gofmt needed on: $unformatted"

for m in "${modules[@]}"; do
	log "vet $m; build $m on its own (GOWORK=off)"
	(cd "$m" && go vet ./... && GOWORK=off go build ./...)
done

make --no-print-directory build BIN="$(state_dir)/bin" >&2

failed=()
for m in "${modules[@]}"; do
	log "test $m"
	flags=(-race -count=1 -timeout 20m)
	# The host's end-to-end packages share one Docker engine, and one of
	# them restarts it: run the host's packages one at a time.
	[[ $m == host ]] && flags+=(-p 1)
	if ! (cd "$m" && go test "${flags[@]}" ./...); then
		failed+=("$m")
	fi
done
if ((${#failed[@]} > 0)); then
	die "tests failed in: ${failed[*]}"
fi
log "all tests passed"
