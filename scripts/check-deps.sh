#!/usr/bin/env bash
# The system programs `make test` drives for real, checked before any test runs.
# (chromium: the browser test drives the apt package through playwright-core; nothing downloads one.)
# Missing ones are installed with apt-get when we are root on Debian/Ubuntu;
# otherwise we stop at once with the exact command to run (never a test timeout).
#   bash scripts/check-deps.sh          (the Makefile's `deps` target; exit 0 = all present)
# Only bash built-ins, `id` and apt-get are used, so it works on a bare machine.
set -uo pipefail

# program → Debian package that ships it
progs=(redis-server redis-cli haproxy promtool prometheus openssl ip chromium)
declare -A pkg_of=(
  [redis-server]=redis-server
  [redis-cli]=redis-tools
  [haproxy]=haproxy
  [promtool]=prometheus
  [prometheus]=prometheus
  [openssl]=openssl
  [ip]=iproute2
  [chromium]=chromium
)

missing_programs() {
  local p
  for p in "${progs[@]}"; do command -v "$p" >/dev/null 2>&1 || printf '%s\n' "$p"; done
}

mapfile -t missing < <(missing_programs)
[ ${#missing[@]} -eq 0 ] && exit 0

# The packages, once each, in a stable order.
pkgs=()
for p in "${missing[@]}"; do
  pk=${pkg_of[$p]}
  case " ${pkgs[*]-} " in *" $pk "*) ;; *) pkgs+=("$pk") ;; esac
done
cmd="apt-get install -y --no-install-recommends ${pkgs[*]}"

have_apt=0
command -v apt-get >/dev/null 2>&1 && have_apt=1
uid=$(id -u 2>/dev/null || echo unknown)

if [ "$have_apt" = 1 ] && [ "$uid" = 0 ]; then
  echo "make test: ${missing[*]} missing; installing ${pkgs[*]} with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  # The tests start their own redis-server and prometheus on free ports: the packages' services must
  # not start (on a systemd host they would hold :6379 and :9090). policy-rc.d 101 = "do not start".
  policy=${POLICY_RC_D:-/usr/sbin/policy-rc.d}
  own_policy=0
  if [ ! -e "$policy" ] && [ -d /usr/sbin ] && printf '#!/bin/sh\nexit 101\n' >"$policy" 2>/dev/null; then
    /bin/chmod 755 "$policy"
    own_policy=1
  fi
  # dpkg's progress lines go nowhere; apt's warnings and errors still show.
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${pkgs[@]}"; } </dev/null >/dev/null; then
    [ "$own_policy" = 1 ] && /bin/rm -f "$policy"
    echo "make test: apt-get could not install ${pkgs[*]}; run this yourself, then make test again:" >&2
    echo "  apt-get update && $cmd" >&2
    exit 1
  fi
  [ "$own_policy" = 1 ] && /bin/rm -f "$policy"
  hash -r
  mapfile -t still < <(missing_programs)
  if [ ${#still[@]} -gt 0 ]; then
    echo "make test: still missing after apt-get: ${still[*]}" >&2
    exit 1
  fi
  echo "make test: installed ${pkgs[*]}" >&2
  exit 0
fi

echo "make test: these programs are missing: ${missing[*]}" >&2
if [ "$have_apt" = 1 ]; then
  echo "make test: not root, so not installing them. Run, then make test again:" >&2
  echo "  sudo apt-get update && sudo $cmd" >&2
else
  echo "make test: no apt-get here. Install the packages that provide them (Debian/Ubuntu names: ${pkgs[*]}), then make test again;" >&2
  echo "  on Debian/Ubuntu: sudo apt-get update && sudo $cmd" >&2
fi
exit 1
