# Everything a fresh machine needs is installed from here: Debian packages, npm packages, the build.
SHELL := /bin/bash
NPM_STAMP := node_modules/.install-stamp

.PHONY: all deps build test demo install compat bench clean lint

all: build

deps: $(NPM_STAMP)
	@bash scripts/install-deps.sh

$(NPM_STAMP): package.json
	npm install --no-audit --no-fund
	@touch $@

build: deps
	npx tsc -p tsconfig.json
	npx tsc -p tsconfig.test.json

test: build
	npx vitest run

compat: build
	node dist/compat/cli.js

demo: build
	bash scripts/demo.sh

bench: build
	bash bench/run-all.sh

install: build
	ln -sf "$(CURDIR)/bin/ondemand" /usr/local/bin/ondemand

clean:
	rm -rf dist
