#!/usr/bin/env bash
# Starts throwaway PostgreSQL, Redis, S3 (moto server) and SMTP (aiosmtpd) servers on free loopback ports.
#
# Sourced:   source scripts/services.sh; services_start   (exports the DOMINUS_TEST_*_URL variables and sets
#            a trap that stops every server on exit; services_stop stops them earlier)
# Run:       scripts/services.sh run CMD ARGS...          (starts them, runs CMD with the variables, stops them)
#
# Needs root (PostgreSQL runs as the `postgres` user) or an invoking user who may run initdb; installs
# redis-server (apt) and PostgreSQL (apt) when missing, and the Python pieces through scripts/setup.sh.
# Exported for the tests:
#   DOMINUS_TEST_POSTGRES_URL  maintenance database of the PostgreSQL server (tests create their own databases)
#   DOMINUS_TEST_CACHE_URL     redis://127.0.0.1:PORT/0
#   DOMINUS_TEST_STORAGE_URL   s3://dominus-test?endpoint_url=http://127.0.0.1:PORT&region=us-east-1
#   DOMINUS_TEST_MAIL_URL      smtp://127.0.0.1:PORT (an aiosmtpd sink writing to a Maildir)
#   AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_DEFAULT_REGION for the moto server

_SERVICES_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_SERVICES_TMP=""
_SERVICES_PIDS=()

_free_port() {
  "$_SERVICES_ROOT/.venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

_wait_port() {  # _wait_port PORT NAME LOGFILE
  local i
  for i in $(seq 1 200); do
    if "$_SERVICES_ROOT/.venv/bin/python" -c "import socket,sys; socket.create_connection(('127.0.0.1', $1), 0.2).close()" 2>/dev/null; then
      return 0
    fi
    sleep 0.05
  done
  echo "services: $2 did not open port $1" >&2
  [ -f "$3" ] && tail -20 "$3" >&2
  return 1
}

_apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "services: $* missing and not root: install it first" >&2
    return 1
  fi
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null
}

services_stop() {
  local pid
  for pid in "${_SERVICES_PIDS[@]}"; do
    kill -INT "$pid" 2>/dev/null || true
  done
  for pid in "${_SERVICES_PIDS[@]}"; do
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null || true
  done
  _SERVICES_PIDS=()
  if [ -n "$_SERVICES_TMP" ]; then
    rm -rf "$_SERVICES_TMP"
    _SERVICES_TMP=""
  fi
}

services_start() {
  set -euo pipefail
  trap services_stop EXIT
  trap 'services_stop; exit 130' INT TERM
  local py="$_SERVICES_ROOT/.venv/bin/python"
  if ! "$py" -c 'import asyncpg, redis, aioboto3, aiosmtplib, aiosmtpd, moto, flask' 2>/dev/null; then
    DOMINUS_EXTRAS="${DOMINUS_EXTRAS:-dev,backends}" bash "$_SERVICES_ROOT/scripts/setup.sh"
  fi
  _SERVICES_TMP="$(mktemp -d /tmp/dominus-services.XXXXXX)"
  chmod 755 "$_SERVICES_TMP"

  # PostgreSQL: a throwaway cluster, trust auth, no fsync.
  if ! ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1; then
    _apt_install postgresql
  fi
  local pgbin pgdata pgport
  pgbin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
  pgdata="$_SERVICES_TMP/pg"
  pgport="$(_free_port)"
  mkdir -p "$pgdata"
  local run_pg=()
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$pgdata"
    run_pg=(runuser -u postgres --)
  fi
  chmod 700 "$pgdata"
  "${run_pg[@]}" "$pgbin/initdb" -D "$pgdata" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
  "${run_pg[@]}" "$pgbin/pg_ctl" -D "$pgdata" -l "$pgdata/server.log" -w -t 60 -o \
    "-c listen_addresses=127.0.0.1 -p $pgport -k $pgdata -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
    start >/dev/null
  _SERVICES_PIDS+=("$(head -1 "$pgdata/postmaster.pid")")
  export DOMINUS_TEST_POSTGRES_URL="postgresql://postgres@127.0.0.1:$pgport/postgres"

  # Redis: no persistence.
  command -v redis-server >/dev/null || _apt_install redis-server
  local rport
  rport="$(_free_port)"
  redis-server --bind 127.0.0.1 --port "$rport" --daemonize yes --save '' --appendonly no \
    --dir "$_SERVICES_TMP" --pidfile "$_SERVICES_TMP/redis.pid" --logfile "$_SERVICES_TMP/redis.log"
  _wait_port "$rport" redis "$_SERVICES_TMP/redis.log"
  _SERVICES_PIDS+=("$(cat "$_SERVICES_TMP/redis.pid")")
  export DOMINUS_TEST_CACHE_URL="redis://127.0.0.1:$rport/0"

  # S3: moto's server mode.
  local sport
  sport="$(_free_port)"
  "$_SERVICES_ROOT/.venv/bin/moto_server" -H 127.0.0.1 -p "$sport" >"$_SERVICES_TMP/moto.log" 2>&1 &
  _SERVICES_PIDS+=("$!")
  _wait_port "$sport" moto_server "$_SERVICES_TMP/moto.log"
  export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-testing}"
  export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-testing}"
  export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
  export DOMINUS_TEST_STORAGE_URL="s3://dominus-test?endpoint_url=http://127.0.0.1:$sport&region=us-east-1"

  # SMTP: an aiosmtpd sink that keeps every message in a Maildir.
  local mport
  mport="$(_free_port)"
  "$py" -m aiosmtpd -n -l "127.0.0.1:$mport" -c aiosmtpd.handlers.Mailbox "$_SERVICES_TMP/maildir" \
    >"$_SERVICES_TMP/smtp.log" 2>&1 &
  _SERVICES_PIDS+=("$!")
  _wait_port "$mport" aiosmtpd "$_SERVICES_TMP/smtp.log"
  export DOMINUS_TEST_MAIL_URL="smtp://127.0.0.1:$mport"
  export DOMINUS_TEST_MAILDIR="$_SERVICES_TMP/maildir"

  echo "services: postgresql :$pgport, redis :$rport, s3 (moto) :$sport, smtp :$mport" >&2
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  if [ "${1:-}" != "run" ] || [ "$#" -lt 2 ]; then
    echo "usage: scripts/services.sh run CMD [ARGS...]   (or source it and call services_start)" >&2
    exit 2
  fi
  shift
  services_start
  set +e
  "$@"
  status=$?
  set -e
  services_stop
  trap - EXIT
  exit "$status"
fi
