# Everything a fresh machine needs is installed from here: Debian packages, npm packages, the build.
SHELL := /bin/bash
NPM_STAMP := node_modules/.install-stamp
BIN := node_modules/.bin

# `make build` redoes nothing when no TypeScript file, folder (a file added, renamed or removed) or
# config changed: the stamp lives in dist/ (removing dist/ rebuilds), and tsc itself is incremental
# (dist/*.tsbuildinfo) for when something did change.
BUILD_STAMP := dist/.build-stamp
# The reading process of `ondemand bench`'s seq and rand workloads (src/bench/ops.ts), in C.
BENCH_READER := dist/native/bench-reader
# (Folders as `dir/.`: `test`, `bench` and `compat` are also targets here.)
TS_DIRS := $(addsuffix /.,$(shell find src test bench compat -type d -not -path '*/node_modules*' 2>/dev/null))
TS_FILES := $(shell find src test bench compat \( -name '*.ts' -o -name '*.mts' \) -not -path '*/node_modules/*' 2>/dev/null)

.PHONY: all deps build check depcheck lint test test-unit test-host test-registry test-compat demo install compat bench clean

all: build

deps: $(NPM_STAMP)
	@bash scripts/install-deps.sh

$(NPM_STAMP): package.json package-lock.json
	npm install --no-audit --no-fund
	@touch $@

build: deps $(BUILD_STAMP) $(BENCH_READER)

$(BENCH_READER): native/bench-reader.c
	@mkdir -p $(dir $@)
	cc -O2 -Wall -Wextra -Werror -o $@ $<

$(BUILD_STAMP): $(NPM_STAMP) $(TS_FILES) $(TS_DIRS) tsconfig.json tsconfig.test.json vitest.config.ts
	$(BIN)/tsc -p tsconfig.json
	$(BIN)/tsc -p tsconfig.test.json
	@touch $@

# Static checks (part of `make test`): import cycles and folder layering of src/, then ESLint. Both
# run (and print) even when the first fails.
check: $(NPM_STAMP)
	@status=0; $(MAKE) --no-print-directory depcheck || status=1; $(MAKE) --no-print-directory lint || status=1; exit $$status

# Cycles between files of src/ and the one-way folder layering, both in .dependency-cruiser.cjs.
depcheck: $(NPM_STAMP)
	@echo "depcheck: import cycles and layering of src/ (.dependency-cruiser.cjs)"
	@$(BIN)/depcruise --config .dependency-cruiser.cjs --output-type err-long src

# typescript-eslint with type information (eslint.config.js) over src/, test/, bench/, compat/.
lint: $(NPM_STAMP)
	@echo "lint: eslint (eslint.config.js)"
	@$(BIN)/eslint --max-warnings 0 .

# Every tier (vitest projects in vitest.config.ts), after the static checks.
test: build check
	$(BIN)/vitest run

# One tier each, without the static checks: unit (no root), host (real mounts), registry
# (docker-registry), compat (QEMU).
test-unit: build
	$(BIN)/vitest run --project unit

test-host: build
	$(BIN)/vitest run --project host

test-registry: build
	$(BIN)/vitest run --project registry

test-compat: build
	$(BIN)/vitest run --project compat

compat: build
	node dist/compat/cli.js

demo: build
	bash scripts/demo.sh

# Every benchmark on this host, `ondemand bench` (all modes vs local on the Debian image, with fio on the
# same mounts, and HelloBench-style start-up vs a full pull) among them; the compat VM's fscache-read
# when qemu is there.
bench: build
	bash bench/run-all.sh

# The CLI on PATH and the systemd unit (packaging/systemd); DESTDIR for staging (the unit test verifies one).
PREFIX ?= /usr/local
UNITDIR ?= /etc/systemd/system
install: build
	mkdir -p "$(DESTDIR)$(PREFIX)/bin" "$(DESTDIR)$(UNITDIR)"
	ln -sf "$(CURDIR)/bin/ondemand" "$(DESTDIR)$(PREFIX)/bin/ondemand"
	sed 's|/usr/local/bin/ondemand|$(PREFIX)/bin/ondemand|g' packaging/systemd/ondemand.service > "$(DESTDIR)$(UNITDIR)/ondemand.service"
	@[ -n "$(DESTDIR)" ] || ! command -v systemctl >/dev/null || systemctl daemon-reload 2>/dev/null || true

clean:
	rm -rf dist
