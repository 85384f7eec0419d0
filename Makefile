# logmesh — the two commands of README.md, and the rest.
SHELL := /bin/bash
GO ?= go
FUZZTIME ?= 20000x

# Debian packages the tests need: ip/tc (network namespaces), pyzmq (libzmq
# interop), chromium (dashboard browser test), rsyslog (bench/e2e comparison),
# nftables (packet loss for the fault tests where the kernel has no tc netem),
# libczmq4 (zgossip interop of the mesh).
DEB_PACKAGES := iproute2 python3-zmq chromium chromium-driver rsyslog nftables libczmq4

.PHONY: run demo test deps vet unit fuzz-short fuzz bench clean

## run: a local logd on the default data dir, with its dashboard
run:
	$(GO) run ./cmd/logd

## demo: the same, with demo apps logging into it
demo:
	$(GO) run ./cmd/logd --demo

## test: every test, as CI runs it (installs missing Debian packages when root)
test: deps vet unit fuzz-short

deps:
	@./scripts/install-deps.sh $(DEB_PACKAGES)

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 -timeout 20m ./...

## fuzz-short: every fuzz target for $(FUZZTIME) (part of make test)
fuzz-short:
	@./scripts/fuzz.sh $(FUZZTIME)

## fuzz: every fuzz target, 10 minutes in total
fuzz:
	@./scripts/fuzz.sh 30s

## soak: the long fault-injection runs (faults/, LOGMESH_SOAK=1; root)
.PHONY: soak
soak: deps
	LOGMESH_SOAK=1 $(GO) test -race -count=1 -timeout 60m -v ./faults/

## bench: every benchmark, logd vs rsyslog, tail -F vs logtail; writes BENCHMARKS.md
## (PROFILE=1 saves profiles, BENCH_QUICK=1 is a short smoke run; < 15 min)
bench:
	@./scripts/bench.sh

clean:
	$(GO) clean -testcache
