#!/usr/bin/env bash
# Run every k6 script (loadtest/k6/*.ts) for a few seconds, with its own
# thresholds, against a gateway started here on free loopback ports.
#   make k6-smoke K6=/path/to/k6          (k6 ≥ 1.0; default: k6 on PATH)
# Exits non-zero when k6 is missing or too old, or when any threshold fails.
# Figures per script (deliveries, latency percentiles, failures) are printed
# at the end and kept in $K6_SMOKE_DIR (default: a temp dir) as k6 summaries.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
k6=${K6:-k6}

how="Get k6 ≥ 1.0 from https://grafana.com/docs/k6/latest/set-up/install-k6/ (a single static binary; no registry here ships it), then: make k6-smoke K6=/path/to/k6"
if ! command -v "$k6" >/dev/null 2>&1; then
  echo "k6-smoke: k6 not found (K6=$k6). $how" >&2
  exit 2
fi
version=$("$k6" version 2>/dev/null | sed -n 's/^k6 v\([0-9][0-9]*\)\..*/\1/p' | head -1)
if [ -z "$version" ] || [ "$version" -lt 1 ]; then
  echo "k6-smoke: $k6 is not k6 ≥ 1.0 ($("$k6" version 2>&1 | head -1)). $how" >&2
  exit 2
fi
make --no-print-directory build >/dev/null || { echo "k6-smoke: make build failed" >&2; exit 2; }

out=${K6_SMOKE_DIR:-$(mktemp -d /tmp/k6-smoke.XXXXXX)}
mkdir -p "$out"
free_port() { node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
port=$(free_port)

# Load-test settings: every VU comes from 127.0.0.1, so per-address limits and
# budgets are off; a low scrypt cost keeps the joins from dominating a short run.
PORT=$port HOST=127.0.0.1 TCP_PORT=0 METRICS_PORT=0 DATA_DIR="$out/data" LOG_LEVEL=warn DRAIN_SECONDS=0 \
  RATE_LIMIT_PER_SEC=0 MAX_CONNECTIONS_PER_IP=0 CREATE_BUDGET=0 AUTH_BUDGET=0 PASSWORD_QUEUE_PER_ADDRESS=0 \
  SCRYPT_N=1024 node dist/services/gateway/src/main.js > "$out/gateway.log" 2>&1 &
gw=$!
trap 'kill -TERM $gw 2>/dev/null; wait $gw 2>/dev/null' EXIT
ready() { node -e 'fetch(process.argv[1]).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))' "http://127.0.0.1:$port/readyz"; }
end=$((SECONDS + 20))
until ready; do
  kill -0 $gw 2>/dev/null || { echo "k6-smoke: the gateway exited:" >&2; cat "$out/gateway.log" >&2; exit 1; }
  [ $SECONDS -lt $end ] || { echo "k6-smoke: the gateway did not get ready" >&2; exit 1; }
  sleep 0.2
done
echo "k6-smoke: $("$k6" version | head -1); gateway on 127.0.0.1:$port; summaries in $out"

# script → its smoke-sized parameters (a few seconds each).
declare -A params=(
  [fanout]="-e GROUPS=5 -e MEMBERS=8 -e RATE=10 -e WARMUP=2 -e DURATION=6"
  [mixed]="-e GROUPS=4 -e MIX=ws_json:4,ws_text:4 -e RATE=5 -e WARMUP=2 -e DURATION=6"
  [throughput]="-e PUBLISHERS=2 -e INFLIGHT=16 -e WARMUP=1 -e DURATION=5 -e MIN_ACK_RATE=${SMOKE_MIN_ACK_RATE:-200}"
  [storm]="-e CONNS=300 -e CONNECT_RATE=100 -e GROUP_SIZE=20 -e HOLD=2"
)
failed=()
for name in fanout mixed throughput storm; do
  echo "k6-smoke: $name (${params[$name]})"
  # shellcheck disable=SC2086
  if ! "$k6" run --quiet --no-color --summary-trend-stats 'avg,min,med,max,p(95),p(99)' --summary-export "$out/$name.json" -e WS_URL="ws://127.0.0.1:$port/" ${params[$name]} \
      "loadtest/k6/$name.ts" > "$out/$name.log" 2>&1; then
    failed+=("$name")
    tail -n 40 "$out/$name.log" >&2
  fi
done

# The figures, from k6's summaries.
node - "$out" <<'JS'
const fs = require('fs');
const dir = process.argv[2];
const fmt = (v) => (v === undefined ? '-' : Number.isInteger(v) ? String(v) : v.toFixed(2));
for (const name of ['fanout', 'mixed', 'throughput', 'storm']) {
  let m;
  try { m = JSON.parse(fs.readFileSync(`${dir}/${name}.json`, 'utf8')).metrics; } catch { console.log(`${name}: no summary`); continue; }
  const g = (k, f) => m[k]?.[f];
  const has = (k) => m[k] && (m[k].count ?? m[k].max ?? m[k].passes + m[k].fails) > 0;
  const parts = [];
  if (has('chat_delivered')) parts.push(`deliveries ${fmt(g('chat_delivered', 'count'))}`);
  if (has('chat_e2e_latency')) parts.push(`e2e p50 ${fmt(g('chat_e2e_latency', 'med'))} ms, p95 ${fmt(g('chat_e2e_latency', 'p(95)'))} ms, p99 ${fmt(g('chat_e2e_latency', 'p(99)'))} ms`);
  if (has('chat_acks')) parts.push(`acks ${fmt(g('chat_acks', 'count'))} (${fmt(g('chat_acks', 'rate'))}/s)`);
  if (has('chat_ack_latency')) parts.push(`ack p99 ${fmt(g('chat_ack_latency', 'p(99)'))} ms`);
  if (has('chat_menu_latency')) parts.push(`menu p99 ${fmt(g('chat_menu_latency', 'p(99)'))} ms`);
  if (m.ws_connecting) parts.push(`connect p95 ${fmt(g('ws_connecting', 'p(95)'))} ms`);
  // A Rate counts true values as passes: here a pass is a failed join.
  if (m.chat_join_failed) parts.push(`failed joins ${g('chat_join_failed', 'passes')}/${g('chat_join_failed', 'passes') + g('chat_join_failed', 'fails')}`);
  if (has('chat_server_errors')) parts.push(`server errors ${fmt(g('chat_server_errors', 'count'))}`);
  const bad = Object.entries(m).flatMap(([k, v]) => Object.entries(v.thresholds ?? {}).filter(([, failed]) => failed).map(([t]) => `${k} ${t}`));
  console.log(`${name}: ${parts.join('; ')}${bad.length ? `; FAILED thresholds: ${bad.join(', ')}` : '; thresholds ok'}`);
}
JS

if [ ${#failed[@]} -gt 0 ]; then
  echo "k6-smoke: thresholds failed in: ${failed[*]} (logs in $out)" >&2
  exit 1
fi
echo "k6-smoke: every script passed its thresholds"
