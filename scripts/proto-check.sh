#!/usr/bin/env bash
# Checks the protocol: lint, formatting, no breaking change against the
# previous commit, and generated code identical to what is committed.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$repo_root"
eval "$(bash scripts/install-deps.sh --print-path)"

log "buf lint"
buf lint
log "buf format"
buf format -d --exit-code
if git rev-parse -q --verify HEAD~1 >/dev/null && git cat-file -e HEAD~1:buf.yaml 2>/dev/null; then
	log "buf breaking against HEAD~1"
	buf breaking --against '.git#ref=HEAD~1'
else
	log "buf breaking: no previous commit with a buf module; nothing to compare"
fi
log "buf generate leaves no diff"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r sdk/internal/gen "$tmp/gen"
buf generate
if ! diff -r "$tmp/gen" sdk/internal/gen >/dev/null; then
	diff -r "$tmp/gen" sdk/internal/gen | head -50 >&2
	die "generated code is stale: run 'make proto' and commit the result"
fi
log "proto checks passed"
