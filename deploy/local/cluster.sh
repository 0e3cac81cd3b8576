#!/usr/bin/env bash
# The whole cluster as local processes: Redis (AOF) + 3 gateways + HAProxy
# (+ Prometheus when installed). Clients use HAProxy: ws://127.0.0.1:8080/ and
# TCP 127.0.0.1:7037, as with `make run`, and over TLS wss://localhost:8443/ and
# tls://localhost:7443 (a local CA and server certificate in .cluster/tls/, made
# once with openssl; clients trust .cluster/tls/ca.pem). Ctrl-C drains the gateways and stops all.
#   make cluster            (builds first)   RUN_DIR=.cluster by default
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
run=${RUN_DIR:-$root/.cluster}
mkdir -p "$run"
cd "$root"

need() { command -v "$1" >/dev/null 2>&1 || { echo "cluster: $1 is missing (apt-get install $2)" >&2; exit 1; }; }
need redis-server redis-server
need redis-cli redis-tools
need haproxy haproxy
need curl curl
need openssl openssl

REDIS_PORT=${REDIS_PORT:-6380}
export LB_HOST=127.0.0.1 LB_WS_PORT=${LB_WS_PORT:-8080} LB_TCP_PORT=${LB_TCP_PORT:-7037} LB_STATS_PORT=${LB_STATS_PORT:-8404}
export LB_WSS_PORT=${LB_WSS_PORT:-8443} LB_TLS_PORT=${LB_TLS_PORT:-7443} LB_CERT="$run/tls/server.pem"
# A local CA and a server certificate for localhost/127.0.0.1 (kept between runs; TLS_NAMES adds names).
bash scripts/make-certs.sh "$run/tls" ${TLS_NAMES:-}
secret_file="$run/chat-secret"
[ -s "$secret_file" ] || head -c 32 /dev/urandom | base64 > "$secret_file"
CHAT_SECRET=$(cat "$secret_file")

pids=()
stopping=0
cleanup() {
  stopping=1
  trap - INT TERM EXIT
  echo "cluster: stopping"
  # Gateways first (SIGTERM = drain), then the rest.
  for p in "${pids[@]:1}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]:1}"; do wait "$p" 2>/dev/null || true; done
  kill -TERM "${pids[0]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

# Wait for a condition, with a deadline (no fixed sleeps as a substitute for readiness).
await() { # what, seconds, command...
  local what=$1 secs=$2; shift 2
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || { echo "cluster: timed out waiting for $what" >&2; exit 1; }
    sleep 0.1
  done
}

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$run" --appendonly yes --save '' > "$run/redis.log" 2>&1 &
pids+=($!)
await "redis on $REDIS_PORT" 10 redis-cli -p "$REDIS_PORT" ping

# Every client of this local cluster reaches the gateways from 127.0.0.1 through HAProxy: one
# forwarded address, never exempt. Per-address budgets and caps are off here unless set (load tests
# from this machine would hit them at once); in production they stay on (docs/SECURITY.md).
export CREATE_BUDGET="${CREATE_BUDGET:-0}" AUTH_BUDGET="${AUTH_BUDGET:-0}" \
  PASSWORD_QUEUE_PER_ADDRESS="${PASSWORD_QUEUE_PER_ADDRESS:-0}" MAX_CONNECTIONS_PER_IP="${MAX_CONNECTIONS_PER_IP:-0}"
targets=()
for i in 1 2 3; do
  port=$((8080 + i)) tcp=$((7030 + i)) metrics=$((9464 + i))
  export "GW${i}_HOST=127.0.0.1" "GW${i}_PORT=$port" "GW${i}_TCP_PORT=$tcp"
  NODE_ID="gw$i" HOST=127.0.0.1 PORT=$port TCP_PORT=$tcp METRICS_PORT=$metrics \
    REDIS_URL="redis://127.0.0.1:$REDIS_PORT" CHAT_SECRET="$CHAT_SECRET" TRUSTED_PROXIES=127.0.0.1 \
    node "${GATEWAY_MAIN:-dist/services/gateway/src/main.js}" > "$run/gw$i.log" 2>&1 &
  pids+=($!)
  targets+=("\"127.0.0.1:$metrics\"")
done
for i in 1 2 3; do
  port=$((8080 + i))
  await "gateway gw$i /readyz" 20 curl -fsS "http://127.0.0.1:$port/readyz"
done

haproxy -db -f deploy/haproxy/haproxy.cfg > "$run/haproxy.log" 2>&1 &
pids+=($!)
await "haproxy on $LB_WS_PORT" 10 curl -fsS "http://127.0.0.1:$LB_STATS_PORT/stats"

if command -v prometheus >/dev/null 2>&1; then
  mkdir -p "$run/prometheus/targets"
  cp deploy/prometheus/prometheus.yml deploy/prometheus/alerts.yml "$run/prometheus/"
  (IFS=,; echo "[{\"targets\": [${targets[*]}], \"labels\": {\"cluster\": \"local\"}}]") > "$run/prometheus/targets/local.json"
  prometheus --config.file="$run/prometheus/prometheus.yml" --storage.tsdb.path="$run/prometheus/data" \
    --web.listen-address=127.0.0.1:${PROMETHEUS_PORT:-9090} > "$run/prometheus.log" 2>&1 &
  pids+=($!)
fi

cat <<MSG
cluster: up (logs in $run)
  Web client http://127.0.0.1:$LB_WS_PORT/   (https://localhost:$LB_WSS_PORT/ over TLS)
  WebSocket  ws://127.0.0.1:$LB_WS_PORT/   (subprotocol chat.json for JSON)
  TCP        127.0.0.1:$LB_TCP_PORT
  wss        wss://localhost:$LB_WSS_PORT/   (trust $run/tls/ca.pem)
  TLS TCP    localhost:$LB_TLS_PORT           (make client URL=tls://localhost:$LB_TLS_PORT CA=$run/tls/ca.pem)
  HAProxy    http://127.0.0.1:$LB_STATS_PORT/stats
  gateways   :8081 :8082 :8083 (metrics :9465 :9466 :9467), Redis :$REDIS_PORT
  Prometheus http://127.0.0.1:${PROMETHEUS_PORT:-9090}/ (if installed)
Ctrl-C to drain and stop.
MSG
wait -n "${pids[@]}" || true
[ "$stopping" = 1 ] || echo "cluster: a process exited; stopping the rest" >&2
