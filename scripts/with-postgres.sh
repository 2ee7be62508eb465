#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL: free port, data in a temp dir, stopped and
# removed on exit (a server left on a fixed port would break the next run on this machine).
# Exports GATEWAY_TEST_DATABASE_URL for the command. If it is already set, just runs it.
set -euo pipefail

if [ -n "${GATEWAY_TEST_DATABASE_URL:-}" ]; then
  exec "$@"
fi

find_bin() {
  local bin
  bin=$(pg_config --bindir 2>/dev/null || true)
  if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  fi
  echo "$bin"
}

BIN=$(find_bin)
if [ -z "$BIN" ] || [ ! -x "$BIN/initdb" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "with-postgres: installing Debian's postgresql" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    BIN=$(find_bin)
  else
    echo "with-postgres: no PostgreSQL binaries found; install postgresql or set GATEWAY_TEST_DATABASE_URL" >&2
    exit 1
  fi
fi

D=$(mktemp -d)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres:postgres "$D"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

cleanup() {
  as_pg "$BIN/pg_ctl" -D "$D/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$D"
}
trap cleanup EXIT INT TERM

as_pg "$BIN/initdb" -D "$D/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$D/initdb.log" 2>&1 \
  || { cat "$D/initdb.log" >&2; exit 1; }
# fsync off: a test database need not survive power loss, and it halves the test time.
as_pg "$BIN/pg_ctl" -D "$D/data" -l "$D/log" -w \
  -o "-p $PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$D -c fsync=off -c max_connections=300" \
  start >/dev/null

export GATEWAY_TEST_DATABASE_URL="postgresql+asyncpg://postgres@127.0.0.1:$PORT/postgres"
echo "with-postgres: PostgreSQL on 127.0.0.1:$PORT" >&2
set +e
"$@"
status=$?
exit $status
