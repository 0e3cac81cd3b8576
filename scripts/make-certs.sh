#!/usr/bin/env bash
# A local certificate authority and a server certificate signed by it, for TLS at
# the balancer (HAProxy's wss:// and TLS-over-TCP ports).
#   bash scripts/make-certs.sh DIR [NAME ...]
# Writes DIR/ca.pem (give this to clients: make client CA=DIR/ca.pem), DIR/ca.key,
# and DIR/server.pem (certificate + key, HAProxy's `crt`). The server certificate
# is valid for localhost, 127.0.0.1, ::1 and every extra NAME (a DNS name or an IP).
# Existing files are kept: delete DIR to start over. EC P-256 keys, 825 days.
set -euo pipefail
dir=${1:?usage: make-certs.sh DIR [NAME ...]}
shift
command -v openssl >/dev/null 2>&1 || { echo "make-certs: openssl is missing (apt-get install openssl)" >&2; exit 1; }
mkdir -p "$dir"
chmod 700 "$dir"
[ -s "$dir/ca.pem" ] && [ -s "$dir/server.pem" ] && exit 0

san="DNS:localhost,IP:127.0.0.1,IP:::1"
for n in "$@"; do
  if [[ $n =~ ^[0-9.]+$ || $n == *:* ]]; then san+=",IP:$n"; else san+=",DNS:$n"; fi
done

umask 077
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
openssl req -x509 "${ec[@]}" -keyout "$dir/ca.key" -out "$dir/ca.pem" -days 825 -subj "/CN=groupchat local CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req "${ec[@]}" -keyout "$tmp/server.key" -out "$tmp/server.csr" -subj "/CN=${1:-localhost}" 2>/dev/null
printf '%s\n' "subjectAltName=$san" "basicConstraints=critical,CA:FALSE" \
  "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" > "$tmp/ext.cnf"
openssl x509 -req -in "$tmp/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial -CAserial "$tmp/ca.srl" \
  -out "$tmp/server.crt" -days 825 -extfile "$tmp/ext.cnf" 2>/dev/null
cat "$tmp/server.crt" "$tmp/server.key" > "$dir/server.pem"
chmod 644 "$dir/ca.pem"
echo "make-certs: CA $dir/ca.pem, server certificate $dir/server.pem ($san)"
