# Label Backup. Two commands matter:
#   make demo  - bring up what is needed, back up a labeled PostgreSQL container, show the result
#   make test  - every test, installing and starting what the tests need
SHELL := /bin/bash
BIN   ?= $(CURDIR)/bin
PLUGINS := local mongodb mysql postgres redis s3
GOFLAGS_BUILD := -trimpath -ldflags=-s

.PHONY: build test demo bench proto proto-check clean

build:
	@mkdir -p $(BIN)
	cd host && CGO_ENABLED=0 go build $(GOFLAGS_BUILD) -o $(BIN)/label-backup ./cmd/label-backup
	@for p in $(PLUGINS); do \
		(cd plugins/$$p && CGO_ENABLED=0 go build $(GOFLAGS_BUILD) -o $(BIN)/label-backup-plugin-$$p ./cmd/label-backup-plugin-$$p) || exit 1; \
	done
	@echo "built into $(BIN): $$(ls $(BIN) | tr '\n' ' ')"

test:
	bash scripts/test.sh

demo:
	bash scripts/demo.sh

bench:
	bash scripts/bench.sh

# Regenerate the protocol's Go code with the pinned local protoc plugins.
proto:
	eval "$$(bash scripts/install-deps.sh --print-path)" && buf generate

proto-check:
	bash scripts/proto-check.sh

clean:
	rm -rf $(BIN)
