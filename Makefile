SHELL := /bin/bash
NODE_TEST := node --test --test-concurrency=1 --test-timeout=120000

.PHONY: install deps build run cluster client test test-unit lint clean bench bench-redis bench-compare k6-check k6-smoke chaos

install: node_modules/.package-lock.json

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

# The Redis engine's Lua scripts are compiled in (scripts/embed-lua.mjs writes lua.generated.ts).
build: install
	node scripts/embed-lua.mjs
	rm -rf dist && npx tsc -p tsconfig.json

# One gateway, embedded engine, WebSocket and the web client (http://localhost:8080/) on 8080, TCP on 7037, metrics on 9464.
run: build
	node dist/services/gateway/src/main.js

# Redis + 3 gateways + HAProxy (+ Prometheus if installed) as local processes; Ctrl-C drains and stops.
cluster: build
	bash deploy/local/cluster.sh

# The terminal client: make client URL=ws://127.0.0.1:8080/ (default: the TCP listener on 7037);
# TLS: make client URL=wss://localhost:8443/ CA=.cluster/tls/ca.pem (or URL=tls://localhost:7443).
client: build
	node dist/services/client/src/main.js $(URL) $(if $(CA),--ca $(CA))

# The system programs the tests drive (redis-server, redis-cli, haproxy, promtool, prometheus,
# openssl, chromium): installed with apt-get when missing and root, otherwise a stop with the exact command.
deps:
	bash scripts/check-deps.sh

# loadtest/ is compiled too: integration/peers.test.ts starts the bench-compare peers (dist/loadtest/peers/).
test: deps build
	npx tsc -p loadtest/tsconfig.json
	$(NODE_TEST) $$(find dist/services -path "*/test/*" -name "*.test.js" | sort)

test-unit: build
	$(NODE_TEST) $$(find dist/services/gateway/test/unit -name "*.test.js" | sort)

# Types everywhere (the web client's plain JS too), the k6 scripts, and no import cycle (layers point one way: docs/ARCHITECTURE.md).
lint: install
	npx tsc -p tsconfig.json --noEmit
	npx tsc -p services/web/tsconfig.json
	node scripts/check-cycles.mjs --layers scripts/layers.json services/gateway/src services/client/src loadtest/harness loadtest/peers
	npx tsc -p loadtest/tsconfig.json --noEmit
	npx tsc -p loadtest/k6/tsconfig.json

# The k6 scripts (loadtest/k6/*.ts) against @types/k6; k6 itself is not installed here.
k6-check: install
	npx tsc -p loadtest/k6/tsconfig.json

# Each k6 script for a few seconds, with its thresholds, against a gateway started on a free port.
# Needs k6 >= 1.0 (not required by run or test): make k6-smoke K6=/path/to/k6
K6 ?= k6
k6-smoke: install
	K6="$(K6)" bash scripts/k6-smoke.sh

# Load benchmarks against gateways the harness starts on loopback; prints a table (docs/BENCHMARKS.md).
# More options: make bench BENCH_ARGS="--scenarios fanout --rate 50" (node dist/loadtest/harness/bench.js --help).
BENCH_ARGS ?=
bench: build
	npx tsc -p loadtest/tsconfig.json
	node dist/loadtest/harness/bench.js $(BENCH_ARGS)

# The same scenarios on the Redis engine: a redis-server on a free port and 2 gateways sharing it.
bench-redis: build
	npx tsc -p loadtest/tsconfig.json
	node dist/loadtest/harness/bench.js --engine redis --nodes 2 $(BENCH_ARGS)

# The gateway side by side with its peers (loadtest/peers/: bare uWS.js + Redis, Socket.IO + redis-adapter),
# one generator, one rate schedule; writes the tables into docs/BENCHMARKS.md (≈ 10 min).
# QUICK=1: scaled down (≈ 2 min), prints only, exits 0 when it ran to the end (CI).
QUICK ?=
bench-compare: build
	npx tsc -p loadtest/tsconfig.json
	node dist/loadtest/harness/compare.js $(if $(QUICK),--quick,--docs docs/BENCHMARKS.md) $(COMPARE_ARGS)

# Fault injection under load (docs/RELIABILITY.md): Redis (AOF) + 3 gateways + HAProxy, clients that
# resume by themselves, one scenario after another (rolling restart, kill -9 of a gateway, Redis frozen,
# Redis kill -9 with everysec and always, a 20,000-connection flood, 100,000 fuzz frames through HAProxy);
# prints the table, exits 1 on any loss or duplicate the
# guarantees forbid. ≤ 10 min. CHAOS_QUICK=1: the small subset make test runs too (≈ 1 min).
# CHAOS_ARGS="--only kill,rolling --out .chaos-table.md" (keys: rolling kill freeze redis-kill redis-kill-always flood fuzz)
# Then the faults that need a network namespace (root, ip netns; test/ops/): 500 half-open clients
# (a link gone without FIN or RST) and a partition between one gateway and Redis.
CHAOS_ARGS ?=
chaos: deps build
	node dist/services/gateway/test/chaos/run.js $(CHAOS_ARGS)
	HALF_OPEN_CLIENTS=500 $(NODE_TEST) dist/services/gateway/test/ops/half-open.test.js dist/services/gateway/test/ops/partition.test.js

clean:
	rm -rf dist
