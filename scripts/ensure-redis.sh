#!/usr/bin/env bash
# Make sure a Redis answers on 127.0.0.1:6379 for the tests: start one if none does, installing Debian's
# redis-server first when it is missing. The tests also start their own redis-server processes (to stop
# Redis under a running daemon), so the binary must be there either way.
set -euo pipefail

ping_redis() {
  (exec 3<>/dev/tcp/127.0.0.1/6379 && printf 'PING\r\n' >&3 && IFS= read -r -t 2 reply <&3 && [[ $reply == +PONG* ]]) \
    2>/dev/null
}

if ! command -v redis-server >/dev/null 2>&1; then
  echo "ensure-redis: installing redis-server (Debian package)" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq redis-server >/dev/null
fi
if ! ping_redis; then
  echo "ensure-redis: starting redis-server on 127.0.0.1:6379" >&2
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir "${TMPDIR:-/tmp}" --logfile "${TMPDIR:-/tmp}/omnicanal-test-redis.log"
  for _ in $(seq 50); do ping_redis && break; sleep 0.1; done
fi
ping_redis || { echo "ensure-redis: no Redis answers on 127.0.0.1:6379" >&2; exit 1; }
echo "ensure-redis: Redis is up on 127.0.0.1:6379" >&2
