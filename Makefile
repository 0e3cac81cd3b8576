SHELL := /bin/bash
NODE_TEST := node --test --test-concurrency=1 --test-timeout=120000

.PHONY: install build run cluster test test-unit lint clean

install: node_modules/.package-lock.json

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

# tsc does not copy the Redis engine's Lua scripts: they are loaded from beside the compiled file.
build: install
	rm -rf dist && npx tsc -p tsconfig.json
	mkdir -p dist/services/gateway/src/engine/redis/scripts
	cp services/gateway/src/engine/redis/scripts/*.lua dist/services/gateway/src/engine/redis/scripts/

# One gateway, embedded engine, WebSocket on 8080, TCP on 7037, metrics on 9464.
run: build
	node dist/services/gateway/src/main.js

# Redis + 3 gateways + HAProxy (+ Prometheus if installed) as local processes; Ctrl-C drains and stops.
cluster: build
	bash deploy/local/cluster.sh

test: build
	$(NODE_TEST) $$(find dist/services/gateway/test -name "*.test.js" | sort)

test-unit: build
	$(NODE_TEST) $$(find dist/services/gateway/test/unit -name "*.test.js" | sort)

lint: install
	npx tsc -p tsconfig.json --noEmit

clean:
	rm -rf dist
