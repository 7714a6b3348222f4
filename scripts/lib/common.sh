# shellcheck shell=bash
# Shared helpers for the callscript local dev stack (PostgreSQL 15 + pg_cron,
# loopback S3 server).  Source it from bash; it is safe under
# `set -euo pipefail` and does not change the caller's shell options.
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
#
# Public:  CS_ROOT / cs_root (repo root), CS_LOCAL (git-ignored state dir),
#          cs_ensure_apt, cs_ensure_database, cs_stop_database,
#          cs_ensure_s3, cs_stop_s3, cs_target_dir,
#          cs_local_database_url, cs_s3_endpoint, cs_print_exports,
#          cs_database_status, cs_s3_status,
#          cs_ensure_fw_venv (CS_FW_VENV, CS_FW_VERSION),
#          cs_ensure_cuda_toolkit, cs_cuda_check (CS_CUDA_SETUP, CS_CUDA_SKIP_REASON).
# Knobs:   DATABASE_URL (use an existing server instead of the local one),
#          CALLSCRIPT_PG_PORT (54329 + a hash of the checkout path, < 54829),
#          CALLSCRIPT_S3_PORT (9014),
#          CS_S3_SERVER_BIN, CARGO_TARGET_DIR.

if [[ -n "${_CS_COMMON_SH_LOADED:-}" ]]; then
  return 0
fi
_CS_COMMON_SH_LOADED=1

CS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
# shellcheck disable=SC2034  # lower-case alias for callers
cs_root="$CS_ROOT"
CS_LOCAL="$CS_ROOT/.local"

CS_PG_BIN=/usr/lib/postgresql/15/bin
CS_DB_NAME=callscript
CS_S3_ACCESS_KEY=callscript
CS_S3_SECRET_KEY=callscript-secret
CS_S3_REGION=us-east-1

_CS_APT_UPDATED=0
_CS_PG_FALLBACK_NOTED=0

cs_root() { printf '%s\n' "$CS_ROOT"; }
cs_log() { printf '%s\n' "$*" >&2; }
cs_err() { printf 'error: %s\n' "$*" >&2; }

_cs_is_root() { [[ $EUID -eq 0 ]]; }

# Run a command as root: directly, through sudo, or fail with a clear message.
_cs_as_root() {
  if _cs_is_root; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    cs_err "need root for: $* (not root and sudo is not installed)"
    return 1
  fi
}

# Is the process alive (and not a zombie)?
_cs_alive() {
  local st
  kill -0 "$1" 2>/dev/null || return 1
  st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  st=${st##*) }
  [[ ${st%% *} != Z ]]
}

_cs_check_port() {
  local name=$1 value=$2
  if [[ ! $value =~ ^[0-9]+$ ]] || ((value < 1 || value > 65535)); then
    cs_err "$name must be a TCP port number, got '$value'"
    return 1
  fi
}

# Does something accept TCP connections on 127.0.0.1:PORT?
_cs_port_open() {
  # shellcheck disable=SC2016  # $1 expands in the inner bash
  timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

# ---------------------------------------------------------------------------
# apt
# ---------------------------------------------------------------------------

# cs_ensure_apt PKG... : install the Debian packages that are not installed yet.
cs_ensure_apt() {
  local pkg status out
  local -a missing=()
  for pkg in "$@"; do
    # shellcheck disable=SC2016  # ${Status} is a dpkg-query field, not a shell expansion
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null) || status=""
    [[ $status == "install ok installed" ]] || missing+=("$pkg")
  done
  ((${#missing[@]})) || return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    cs_err "apt-get not found; install these packages yourself: ${missing[*]}"
    return 1
  fi
  cs_log "installing ${missing[*]} (apt-get)..."
  out=$(mktemp) || return 1
  if [[ $_CS_APT_UPDATED != 1 ]]; then
    if ! _cs_as_root env DEBIAN_FRONTEND=noninteractive apt-get update >"$out" 2>&1; then
      cs_err "apt-get update failed:"
      tail -n 20 "$out" >&2
      rm -f "$out"
      return 1
    fi
    _CS_APT_UPDATED=1
  fi
  if ! _cs_as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}" >"$out" 2>&1; then
    cs_err "apt-get install ${missing[*]} failed:"
    tail -n 20 "$out" >&2
    rm -f "$out"
    return 1
  fi
  rm -f "$out"
}

# ---------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------

# Default port: 54329 plus a number derived from the checkout's path, so two checkouts on one
# machine (a working copy and CI's fresh clone, say) never fight over one port.
_cs_pg_default_port() {
  local sum
  sum=$(printf '%s' "$CS_ROOT" | cksum)
  printf '%s\n' $((54329 + ${sum%% *} % 500))
}

_cs_pg_port() {
  local port=${CALLSCRIPT_PG_PORT:-$(_cs_pg_default_port)}
  _cs_check_port CALLSCRIPT_PG_PORT "$port" || return 1
  printf '%s\n' "$port"
}

# The URL of the local cluster (whether or not it is running).
cs_local_database_url() {
  local port
  port=$(_cs_pg_port) || return 1
  printf 'postgres://postgres@127.0.0.1:%s/%s\n' "$port" "$CS_DB_NAME"
}

# True when DATABASE_URL points somewhere other than our own local cluster
# (after `eval "$(scripts/stack env)"` it points at the local one, which we
# still manage).
_cs_database_url_is_external() {
  local local_url
  [[ -n ${DATABASE_URL:-} ]] || return 1
  local_url=$(cs_local_database_url 2>/dev/null) || return 0
  [[ $DATABASE_URL != "$local_url" ]]
}

# Run a server-side command as the cluster owner: the `postgres` OS user when
# we are root (PostgreSQL refuses to run as root), else the current user.
# The lock fd of cs_ensure_database is closed for it, or the postmaster would
# inherit it and hold the lock for as long as it runs.
_cs_pg_run() {
  if [[ -n ${_CS_PG_LOCK_FD:-} ]]; then
    _cs_pg_run_unlocked "$@" {_CS_PG_LOCK_FD}>&-
  else
    _cs_pg_run_unlocked "$@"
  fi
}

_cs_pg_run_unlocked() {
  if _cs_is_root; then
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

_cs_pg_fallback_base() {
  local hash
  hash=$(printf '%s' "$CS_ROOT" | sha256sum) || return 1
  printf '/var/tmp/callscript-pg-%s-%s\n' "$(id -u)" "${hash:0:12}"
}

# Sets _CS_PG_BASE/_DATA/_RUN/_LOG and _CS_PG_FALLBACK_WHY (empty unless the
# cluster lives outside the repo).  An existing cluster always wins, so stop
# and status find it again.
_cs_pg_paths() {
  local port primary="$CS_LOCAL/pg" fallback probe
  port=$(_cs_pg_port) || return 1
  fallback=$(_cs_pg_fallback_base) || return 1
  _CS_PG_BASE=$primary
  _CS_PG_FALLBACK_WHY=""
  if [[ -f $primary/data/PG_VERSION ]]; then
    :
  elif [[ -f $fallback/data/PG_VERSION ]]; then
    _CS_PG_BASE=$fallback
    _CS_PG_FALLBACK_WHY="existing cluster"
  elif ((${#primary} + ${#port} + 14 > 107)); then
    # unix socket paths are limited to 107 bytes
    _CS_PG_BASE=$fallback
    _CS_PG_FALLBACK_WHY="the socket path under $primary would be too long"
  elif _cs_is_root && getent passwd postgres >/dev/null 2>&1; then
    probe=$CS_LOCAL
    [[ -d $probe ]] || probe=$CS_ROOT
    if ! runuser -u postgres -- test -x "$probe" 2>/dev/null; then
      _CS_PG_BASE=$fallback
      _CS_PG_FALLBACK_WHY="the postgres OS user cannot traverse $(_cs_pg_blocking_dir "$probe")"
    fi
  fi
  _CS_PG_DATA=$_CS_PG_BASE/data
  _CS_PG_RUN=$_CS_PG_BASE/run
  _CS_PG_LOG=$_CS_PG_BASE/log
}

# First directory on the way to $1 that the postgres OS user cannot enter.
_cs_pg_blocking_dir() {
  local path=$1 dir="" part
  local -a parts
  IFS=/ read -r -a parts <<<"${path#/}"
  for part in "${parts[@]}"; do
    dir="$dir/$part"
    if ! runuser -u postgres -- test -x "$dir" 2>/dev/null; then
      printf '%s\n' "$dir"
      return 0
    fi
  done
  printf '%s\n' "$path"
}

# Create base/run/log owned by the cluster owner.  Switches to the fallback
# base when the owner cannot write the in-repo one (e.g. chown not allowed).
_cs_pg_prepare_dirs() {
  local d
  if [[ $_CS_PG_BASE == /var/tmp/* && -e $_CS_PG_BASE ]]; then
    # world-writable parent: refuse anything we did not create
    if [[ -L $_CS_PG_BASE ]] || { _cs_is_root && [[ $(stat -c %U "$_CS_PG_BASE") != postgres ]]; } ||
      { ! _cs_is_root && [[ ! -O $_CS_PG_BASE ]]; }; then
      cs_err "$_CS_PG_BASE exists but is not ours; remove it or move the repo"
      return 1
    fi
  fi
  mkdir -p "$_CS_PG_BASE" "$_CS_PG_RUN" "$_CS_PG_LOG" || return 1
  chmod 0700 "$_CS_PG_BASE" || return 1
  if _cs_is_root; then
    chown postgres:postgres "$_CS_PG_BASE" "$_CS_PG_RUN" "$_CS_PG_LOG" 2>/dev/null || true
    for d in "$_CS_PG_RUN" "$_CS_PG_LOG"; do
      if ! runuser -u postgres -- test -w "$d" 2>/dev/null; then
        if [[ -n $_CS_PG_FALLBACK_WHY ]]; then
          cs_err "the postgres OS user cannot write $d"
          return 1
        fi
        _CS_PG_FALLBACK_WHY="the postgres OS user cannot write $d"
        _CS_PG_BASE=$(_cs_pg_fallback_base) || return 1
        _CS_PG_DATA=$_CS_PG_BASE/data
        _CS_PG_RUN=$_CS_PG_BASE/run
        _CS_PG_LOG=$_CS_PG_BASE/log
        _cs_pg_prepare_dirs
        return
      fi
    done
  fi
}

_cs_pg_running() {
  [[ -x $CS_PG_BIN/pg_ctl && -f $_CS_PG_DATA/PG_VERSION ]] || return 1
  if _cs_is_root; then
    getent passwd postgres >/dev/null 2>&1 || return 1
  fi
  _cs_pg_run "$CS_PG_BIN/pg_ctl" status -D "$_CS_PG_DATA" >/dev/null 2>&1
}

# Port the running postmaster listens on (line 4 of postmaster.pid).
_cs_pg_running_port() {
  sed -n 4p "$_CS_PG_DATA/postmaster.pid" 2>/dev/null
}

_cs_pg_conf_quote() {
  local q="'"
  printf "'%s'" "${1//$q/$q$q}"
}

_cs_pg_conf() {
  local port=$1
  cat <<EOF
# Managed by scripts/lib/common.sh (callscript dev stack); rewritten on every
# 'scripts/stack up'.  Put your own settings in postgresql.auto.conf
# (ALTER SYSTEM) instead.
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = $(_cs_pg_conf_quote "$_CS_PG_RUN")
max_connections = 200
shared_preload_libraries = 'pg_cron'
cron.database_name = '$CS_DB_NAME'
cron.host = '127.0.0.1'
EOF
}

_cs_pg_log_tail() {
  cs_log "--- last lines of $_CS_PG_LOG/postgresql.log:"
  tail -n 15 "$_CS_PG_LOG/postgresql.log" >&2 2>/dev/null || true
}

# Summarise a postgres URL for error messages, without credentials.
_cs_pg_url_summary() {
  local url=$1 rest hostport host port db
  rest=${url#*://}
  if [[ $rest == "$url" ]]; then
    printf 'not a postgres:// URL'
    return 0
  fi
  db=""
  [[ $rest != */* ]] || db=${rest#*/}
  db=${db%%\?*}
  hostport=${rest%%[/?]*}
  hostport=${hostport##*@}
  if [[ $hostport == \[* ]]; then
    host=${hostport%%]*}
    host=${host#[}
    port=${hostport##*]}
    port=${port#:}
  else
    host=${hostport%%:*}
    port=""
    [[ $hostport != *:* ]] || port=${hostport#*:}
  fi
  printf 'host %s, port %s, database %s' "${host:-<unix socket>}" "${port:-5432}" "${db:-<default>}"
}

_cs_mask_url() {
  # shellcheck disable=SC2001
  sed -E 's#^([a-z]+://[^:/@]+):[^@/]*@#\1:***@#' <<<"$1"
}

# Check an externally provided DATABASE_URL; one error line on failure.
_cs_check_external_database() {
  local err reason
  if ! command -v psql >/dev/null 2>&1; then
    cs_ensure_apt postgresql-client-15 || return 1
  fi
  if err=$(PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-5} psql -X -q -At -v ON_ERROR_STOP=1 \
    -d "$DATABASE_URL" -c 'select 1' 2>&1 >/dev/null); then
    export DATABASE_URL
    return 0
  fi
  reason=${err%%$'\n'*}
  if [[ $reason == *"failed: "* ]]; then
    reason=${reason##*failed: }
  else
    reason=${reason#psql: }
    reason=${reason#error: }
  fi
  reason=$(tr -s ' ' <<<"$reason")
  printf 'error: cannot reach the database at DATABASE_URL (%s): %s\n' \
    "$(_cs_pg_url_summary "$DATABASE_URL")" "${reason:-unknown error}" >&2
  return 1
}

_cs_ensure_local_database() {
  local port conf_new conf_old tmp i restart=0 exists
  port=$(_cs_pg_port) || return 1
  cs_ensure_apt postgresql-15 postgresql-15-cron || return 1
  mkdir -p "$CS_LOCAL" || return 1
  _cs_pg_paths || return 1
  _cs_pg_prepare_dirs || return 1

  if [[ ! -f $_CS_PG_DATA/PG_VERSION ]]; then
    if [[ -n $_CS_PG_FALLBACK_WHY && $_CS_PG_FALLBACK_NOTED == 0 ]]; then
      cs_log "note: keeping the PostgreSQL cluster in $_CS_PG_BASE ($_CS_PG_FALLBACK_WHY)"
      _CS_PG_FALLBACK_NOTED=1
    fi
    cs_log "creating PostgreSQL cluster in $_CS_PG_DATA..."
    tmp=$(mktemp) || return 1
    chmod 0644 "$tmp"
    if ! _cs_pg_run "$CS_PG_BIN/initdb" -D "$_CS_PG_DATA" -U postgres --auth=trust \
      --encoding=UTF8 --locale=C.UTF-8 >"$tmp" 2>&1; then
      cs_err "initdb failed:"
      tail -n 20 "$tmp" >&2
      rm -f "$tmp"
      return 1
    fi
    rm -f "$tmp"
  fi

  # Refuse a port someone else holds before touching a running cluster.
  if ! { _cs_pg_running && [[ $(_cs_pg_running_port) == "$port" ]]; } && _cs_port_open "$port"; then
    cs_err "127.0.0.1:$port is already in use by another process (set CALLSCRIPT_PG_PORT)"
    return 1
  fi

  # Our settings live in callscript.conf, included from postgresql.conf.
  conf_new=$(_cs_pg_conf "$port")
  conf_old=$(cat "$_CS_PG_DATA/callscript.conf" 2>/dev/null) || conf_old=""
  if [[ $conf_new != "$conf_old" ]]; then
    printf '%s\n' "$conf_new" >"$_CS_PG_DATA/callscript.conf" || return 1
    if _cs_is_root; then chown postgres:postgres "$_CS_PG_DATA/callscript.conf" || return 1; fi
    restart=1
  fi
  if ! grep -qxF "include 'callscript.conf'" "$_CS_PG_DATA/postgresql.conf"; then
    printf '\n%s\n' "include 'callscript.conf'" >>"$_CS_PG_DATA/postgresql.conf" || return 1
    restart=1
  fi

  if _cs_pg_running; then
    if ((restart)); then
      cs_log "restarting local PostgreSQL (settings changed)..."
      if ! _cs_pg_run "$CS_PG_BIN/pg_ctl" restart -D "$_CS_PG_DATA" -l "$_CS_PG_LOG/postgresql.log" \
        -m fast -w -t 60 -s >/dev/null; then
        cs_err "PostgreSQL failed to restart"
        _cs_pg_log_tail
        return 1
      fi
    fi
  else
    cs_log "starting local PostgreSQL on 127.0.0.1:$port..."
    if ! _cs_pg_run "$CS_PG_BIN/pg_ctl" start -D "$_CS_PG_DATA" -l "$_CS_PG_LOG/postgresql.log" \
      -w -t 60 -s >/dev/null; then
      cs_err "PostgreSQL failed to start (is port $port in use? set CALLSCRIPT_PG_PORT)"
      _cs_pg_log_tail
      return 1
    fi
  fi

  for ((i = 0; ; i++)); do
    "$CS_PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres && break
    if ((i >= 150)); then
      cs_err "PostgreSQL on 127.0.0.1:$port did not become ready within 30s"
      _cs_pg_log_tail
      return 1
    fi
    sleep 0.2
  done

  exists=$("$CS_PG_BIN/psql" -X -q -At -h 127.0.0.1 -p "$port" -U postgres -d postgres \
    -c "select 1 from pg_database where datname = '$CS_DB_NAME'") || return 1
  if [[ $exists != 1 ]]; then
    "$CS_PG_BIN/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres \
      -v ON_ERROR_STOP=1 -c "create database $CS_DB_NAME" >/dev/null || return 1
  fi

  export DATABASE_URL="postgres://postgres@127.0.0.1:$port/$CS_DB_NAME"
}

# cs_ensure_database: use DATABASE_URL if set (must be reachable), else make
# sure the local cluster runs and export DATABASE_URL for it.
cs_ensure_database() {
  local rc=0
  if _cs_database_url_is_external; then
    _cs_check_external_database
    return
  fi
  mkdir -p "$CS_LOCAL" || return 1
  # serialise concurrent `stack up`s
  exec {_CS_PG_LOCK_FD}>"$CS_LOCAL/.pg.lock" || return 1
  if ! flock -w 120 "$_CS_PG_LOCK_FD"; then
    exec {_CS_PG_LOCK_FD}>&-
    _CS_PG_LOCK_FD=""
    cs_err "timed out waiting for another 'stack up' ($CS_LOCAL/.pg.lock)"
    return 1
  fi
  _cs_ensure_local_database || rc=$?
  exec {_CS_PG_LOCK_FD}>&-
  _CS_PG_LOCK_FD=""
  return "$rc"
}

# cs_stop_database: stop the local cluster if it runs (never an external one).
cs_stop_database() {
  [[ -x $CS_PG_BIN/pg_ctl ]] || return 0
  _cs_pg_paths || return 1
  _cs_pg_running || return 0
  if ! _cs_pg_run "$CS_PG_BIN/pg_ctl" stop -D "$_CS_PG_DATA" -m fast -w -t 60 -s >/dev/null; then
    cs_err "could not stop the local PostgreSQL ($_CS_PG_DATA)"
    return 1
  fi
  cs_log "stopped local PostgreSQL"
}

# One status line for the database.
cs_database_status() {
  local url port local_state="stopped"
  url=$(cs_local_database_url) || return 1
  _cs_pg_paths || return 1
  if _cs_pg_running; then
    local_state="running"
    port=$(_cs_pg_running_port)
    [[ -z $port ]] || url="postgres://postgres@127.0.0.1:$port/$CS_DB_NAME"
  fi
  if _cs_database_url_is_external; then
    local reach="unreachable"
    if command -v psql >/dev/null 2>&1 &&
      PGCONNECT_TIMEOUT=3 psql -X -q -At -d "$DATABASE_URL" -c 'select 1' >/dev/null 2>&1; then
      reach="reachable"
    fi
    printf 'database: external %s (%s; local cluster %s)\n' \
      "$(_cs_mask_url "$DATABASE_URL")" "$reach" "$local_state"
    return 0
  fi
  if [[ $local_state == running ]]; then
    printf 'database: running %s (data %s)\n' "$url" "$_CS_PG_DATA"
  elif [[ -f $_CS_PG_DATA/PG_VERSION ]]; then
    printf 'database: stopped %s (data %s)\n' "$url" "$_CS_PG_DATA"
  else
    printf 'database: stopped %s (not created yet)\n' "$url"
  fi
}

# ---------------------------------------------------------------------------
# S3
# ---------------------------------------------------------------------------

_cs_s3_port() {
  local port=${CALLSCRIPT_S3_PORT:-9014}
  _cs_check_port CALLSCRIPT_S3_PORT "$port" || return 1
  printf '%s\n' "$port"
}

cs_s3_endpoint() {
  local port
  port=$(_cs_s3_port) || return 1
  printf 'http://127.0.0.1:%s\n' "$port"
}

_cs_s3_export() {
  CALLSCRIPT_S3_ENDPOINT=$(cs_s3_endpoint) || return 1
  export CALLSCRIPT_S3_ENDPOINT
  export AWS_ACCESS_KEY_ID=$CS_S3_ACCESS_KEY
  export AWS_SECRET_ACCESS_KEY=$CS_S3_SECRET_KEY
  export AWS_REGION=$CS_S3_REGION
}

# Print the pid of our S3 server if the pidfile names a live process running
# the recorded binary (also when that binary was rebuilt since); else fail.
_cs_s3_pid() {
  local dir="$CS_LOCAL/s3" pid bin exe
  [[ -f $dir/pid ]] || return 1
  pid=$(cat "$dir/pid" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  _cs_alive "$pid" || return 1
  bin=$(cat "$dir/bin" 2>/dev/null) || bin=""
  if [[ -z $bin && -n ${CS_S3_SERVER_BIN:-} ]]; then
    bin=$(readlink -f -- "$CS_S3_SERVER_BIN") || return 1
  fi
  [[ -n $bin ]] || return 1
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  [[ ${exe% (deleted)} == "$bin" ]] || return 1
  printf '%s\n' "$pid"
}

# cs_ensure_s3: start the loopback S3 server ($CS_S3_SERVER_BIN) unless it
# already runs, wait for its port, export the S3 variables.
cs_ensure_s3() {
  local port bin dir="$CS_LOCAL/s3" pid want have exe i
  port=$(_cs_s3_port) || return 1
  bin=${CS_S3_SERVER_BIN:-}
  if [[ -z $bin ]]; then
    cs_err "CS_S3_SERVER_BIN is not set (path of the s3-dev-server binary)"
    return 1
  fi
  if [[ ! -f $bin || ! -x $bin ]]; then
    cs_err "S3 server binary missing or not executable: $bin"
    return 1
  fi
  bin=$(readlink -f -- "$bin") || return 1
  mkdir -p "$dir/data" || return 1
  local -a args=(--root "$dir/data" --addr "127.0.0.1:$port"
    --access-key "$CS_S3_ACCESS_KEY" --secret-key "$CS_S3_SECRET_KEY")

  pid=$(_cs_s3_pid) || pid=""
  if [[ -n $pid ]]; then
    want=$(printf '%s\n' "$bin" "${args[@]}")
    have=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null) || have=""
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || exe=""
    if [[ $want == "$have" && $exe != *" (deleted)" ]] && _cs_port_open "$port"; then
      _cs_s3_export
      return
    fi
    cs_log "restarting the S3 dev server (binary or settings changed)..."
    cs_stop_s3 || return 1
  fi

  if _cs_port_open "$port"; then
    cs_err "127.0.0.1:$port is already in use by another process (set CALLSCRIPT_S3_PORT)"
    return 1
  fi
  cs_log "starting the S3 dev server on 127.0.0.1:$port..."
  printf '%s\n' "$bin" >"$dir/bin" || return 1
  printf '\n--- %s: starting %s\n' "$(date '+%F %T')" "$bin" >>"$dir/log"
  nohup "$bin" "${args[@]}" >>"$dir/log" 2>&1 </dev/null &
  pid=$!
  printf '%s\n' "$pid" >"$dir/pid" || return 1
  for ((i = 0; ; i++)); do
    _cs_port_open "$port" && break
    if ! _cs_alive "$pid"; then
      rm -f "$dir/pid"
      cs_err "the S3 dev server exited; last lines of $dir/log:"
      tail -n 15 "$dir/log" >&2
      return 1
    fi
    if ((i >= 150)); then
      cs_err "the S3 dev server did not open 127.0.0.1:$port within 30s (see $dir/log)"
      return 1
    fi
    sleep 0.2
  done
  _cs_s3_export
}

# cs_stop_s3: stop our S3 server (by pidfile, only if it is that binary).
cs_stop_s3() {
  local pid i
  pid=$(_cs_s3_pid) || pid=""
  if [[ -z $pid ]]; then
    rm -f "$CS_LOCAL/s3/pid"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    _cs_alive "$pid" || break
    sleep 0.1
  done
  if _cs_alive "$pid"; then
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$CS_LOCAL/s3/pid"
  cs_log "stopped the S3 dev server (pid $pid)"
}

cs_s3_status() {
  local pid endpoint
  endpoint=$(cs_s3_endpoint) || return 1
  pid=$(_cs_s3_pid) || pid=""
  if [[ -n $pid ]]; then
    printf 's3: running %s (pid %s)\n' "$endpoint" "$pid"
  else
    printf 's3: stopped %s\n' "$endpoint"
  fi
}

# ---------------------------------------------------------------------------
# CUDA: a compile-only toolkit for `cargo check --features cuda` (no GPU needed)
# ---------------------------------------------------------------------------

# Builds the toolkit from PyPI wheels; lives beside the checkout (absent on a user's machine).
CS_CUDA_SETUP="$CS_ROOT/../shared/tools/setup-cuda13-toolchain.sh"
# Written into the toolkit folder once a setup finished and its nvcc ran. The setup script
# writes absolute paths (venv, symlinks, env.sh), so it cannot be built elsewhere and renamed
# into place: the marker is what tells a finished toolkit from an interrupted one.
_CS_CUDA_READY=.callscript-ready
CS_CUDA_SKIP_REASON=""

# Does the env.sh in $1 give an nvcc that runs?
_cs_cuda_toolkit_works() {
  (
    set +eu
    # shellcheck source=/dev/null
    source "$1/env.sh" && nvcc --version
  ) >/dev/null 2>&1
}

# cs_cuda_toolkit_ready DIR: is a finished toolkit in DIR? A folder with env.sh but no marker
# (set up by hand, or by an older scripts/test) is adopted when its nvcc runs.
cs_cuda_toolkit_ready() {
  local dir=$1
  [[ -f $dir/env.sh ]] || return 1
  [[ -f $dir/$_CS_CUDA_READY ]] && return 0
  _cs_cuda_toolkit_works "$dir" || return 1
  : >"$dir/$_CS_CUDA_READY" 2>/dev/null || true
}

# Is DIR made only of what the setup script (and we) put there? Only such a folder is removed.
_cs_cuda_dir_is_ours() {
  local entry
  shopt -s nullglob dotglob
  local -a entries=("$1"/*)
  shopt -u nullglob dotglob
  for entry in "${entries[@]}"; do
    case ${entry##*/} in
      venv | cudaroot | stubsrc | runstub | env.sh | setup.log | .callscript-*) ;;
      *) return 1 ;;
    esac
  done
}

# Can pip reach its package index (PyPI, or the mirror pip is configured with)? Short timeouts.
_cs_pip_index_reachable() {
  local out
  if out=$(timeout 40 python3 -m pip index versions nvidia-cuda-nvcc --disable-pip-version-check \
    --timeout 10 --retries 0 2>&1); then
    return 0
  fi
  if [[ $out == *"unknown command"* ]]; then # pip older than 21.2: ask the index over HTTP
    curl -fsSI --max-time 10 -o /dev/null "${PIP_INDEX_URL:-https://pypi.org/simple/}"
    return
  fi
  return 1
}

# Runs under the lock of cs_ensure_cuda_toolkit.
_cs_cuda_setup_locked() {
  local dir=$1 log start=$SECONDS
  cs_cuda_toolkit_ready "$dir" && return 0 # another process finished it while we waited
  if [[ -e $dir ]]; then
    if [[ ! -d $dir ]] || ! _cs_cuda_dir_is_ours "$dir"; then
      cs_err "$dir is not a finished CUDA toolkit (no working env.sh) and holds files the" \
        "setup did not make: remove it or set CALLSCRIPT_CUDA_TOOLKIT to another folder"
      return 1
    fi
    cs_log "removing the unfinished CUDA toolkit in $dir"
    rm -rf -- "$dir" || return 1
  fi
  # the setup script reads cudarc's list of driver symbols from the cargo registry
  if ! (cd "$CS_ROOT" && cargo fetch -q); then
    cs_err "cargo fetch failed (needed for cudarc's sources)"
    return 1
  fi
  mkdir -p "$dir" || return 1
  log=$dir/setup.log
  cs_log "setting up a compile-only CUDA 13.0 toolkit in $dir (about 1.2 GB of PyPI wheels)..."
  if ! bash "$CS_CUDA_SETUP" "$dir" >"$log" 2>&1; then
    cs_err "the CUDA toolkit setup failed ($CS_CUDA_SETUP; log $log):"
    tail -n 20 "$log" >&2
    return 1
  fi
  if ! _cs_cuda_toolkit_works "$dir"; then
    cs_err "the CUDA toolkit in $dir was set up but its nvcc does not run (log $log)"
    return 1
  fi
  : >"$dir/$_CS_CUDA_READY" || return 1
  cs_log "CUDA toolkit ready in $dir ($((SECONDS - start)) s)"
}

# cs_ensure_cuda_toolkit DIR: make sure a finished compile-only CUDA 13 toolkit is in DIR,
# setting it up with $CS_CUDA_SETUP when it is not (idempotent; an unfinished folder is set up
# again; concurrent callers wait on DIR.lock).
# Returns 0 when ready; 2 when it cannot be set up here (no setup script, no pip, PyPI not
# reachable), with the reason in CS_CUDA_SKIP_REASON; 1 when the setup failed.
cs_ensure_cuda_toolkit() {
  local dir=$1 lock_fd rc=0
  CS_CUDA_SKIP_REASON=""
  cs_cuda_toolkit_ready "$dir" && return 0
  if [[ ! -f $CS_CUDA_SETUP ]]; then
    CS_CUDA_SKIP_REASON="no toolkit at $dir, and no $CS_CUDA_SETUP to set one up (no ../shared beside the checkout)"
    return 2
  fi
  if ! python3 -m pip --version >/dev/null 2>&1; then
    CS_CUDA_SKIP_REASON="no toolkit at $dir, and python3 -m pip is not available to set one up"
    return 2
  fi
  if ! _cs_pip_index_reachable; then
    CS_CUDA_SKIP_REASON="no toolkit at $dir, and pip's package index (PyPI) cannot be reached to set one up"
    return 2
  fi
  mkdir -p "$(dirname "$dir")" || return 1
  exec {lock_fd}>"$dir.lock" || return 1
  if ! flock -w 1800 "$lock_fd"; then
    exec {lock_fd}>&-
    cs_err "timed out waiting for another CUDA toolkit setup ($dir.lock)"
    return 1
  fi
  _cs_cuda_setup_locked "$dir" || rc=$?
  exec {lock_fd}>&-
  return "$rc"
}

# cs_cuda_check: `cargo check -p callscript --features cuda` against the compile-only toolkit at
# $CALLSCRIPT_CUDA_TOOLKIT (default ~/.cache/callscript-cuda13), set up first when missing.
# CALLSCRIPT_CUDA_CHECK=0 skips it; =1 turns "cannot set the toolkit up" into an error; unset,
# that is a skip with its reason printed. A failed check is always an error.
cs_cuda_check() {
  local toolkit=${CALLSCRIPT_CUDA_TOOLKIT:-${HOME:?HOME is not set}/.cache/callscript-cuda13}
  local mode=${CALLSCRIPT_CUDA_CHECK:-} rc=0 start
  if [[ $mode == 0 ]]; then
    cs_log "CUDA build check skipped (CALLSCRIPT_CUDA_CHECK=0)"
    return 0
  fi
  cs_ensure_cuda_toolkit "$toolkit" || rc=$?
  if ((rc != 0)); then
    local why=${CS_CUDA_SKIP_REASON:-the toolkit setup failed (see above)}
    if [[ $mode == 1 ]]; then
      cs_err "CALLSCRIPT_CUDA_CHECK=1, but $why"
      return 1
    fi
    cs_log "SKIPPED the CUDA build check (cargo check --features cuda): $why." \
      "CALLSCRIPT_CUDA_CHECK=1 makes this an error, =0 silences it."
    return 0
  fi
  cs_target_dir
  cs_log "checking the CUDA build with $toolkit"
  start=$SECONDS
  # Its own target dir: the cuda feature rebuilds candle, which would evict the CPU build.
  (
    # shellcheck source=/dev/null
    source "$toolkit/env.sh"
    cd "$CS_ROOT"
    CARGO_TARGET_DIR="$CARGO_TARGET_DIR-cuda" cargo check -q -p callscript --features cuda
  ) || return 1
  cs_log "CUDA build check passed ($((SECONDS - start)) s)"
}

# ---------------------------------------------------------------------------
# misc
# ---------------------------------------------------------------------------

# The Python virtual environment with faster-whisper, the engine callscript is measured against
# (scripts/whisper-references writes test references with it, scripts/bench asr --compare
# benchmarks it).  Network (PyPI) is needed only to create it.
CS_FW_VENV="$CS_LOCAL/fw-venv"
CS_FW_VERSION=1.2.1

# cs_ensure_fw_venv: create $CS_FW_VENV with faster-whisper==$CS_FW_VERSION unless it already
# has that version (idempotent).
cs_ensure_fw_venv() {
  if "$CS_FW_VENV/bin/python" -c "import faster_whisper, sys; sys.exit(faster_whisper.__version__ != '$CS_FW_VERSION')" 2>/dev/null; then
    return 0
  fi
  cs_log "creating $CS_FW_VENV with faster-whisper==$CS_FW_VERSION"
  mkdir -p "$CS_LOCAL" || return 1
  python3 -m venv "$CS_FW_VENV" || return 1
  if ! "$CS_FW_VENV/bin/pip" install --quiet --disable-pip-version-check \
    "faster-whisper==$CS_FW_VERSION" >&2; then
    cs_err "could not install faster-whisper==$CS_FW_VERSION into $CS_FW_VENV (PyPI reachable?)"
    return 1
  fi
}

# cs_target_dir: export CARGO_TARGET_DIR, by default the folder .cargo/config.toml names for
# plain `cargo` (beside the checkout), so a build by hand and a script share one build.
cs_target_dir() {
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$(cd "$CS_ROOT/.." && pwd -P)/.callscript-target}"
  mkdir -p "$CARGO_TARGET_DIR"
}

# cs_print_exports [db] [s3]: `export` lines for eval.  DATABASE_URL is the
# current one if set, else the local cluster's.
cs_print_exports() {
  local what db_url s3_url
  for what in "$@"; do
    case $what in
      db)
        db_url=${DATABASE_URL:-}
        [[ -n $db_url ]] || db_url=$(cs_local_database_url) || return 1
        printf 'export DATABASE_URL=%q\n' "$db_url"
        ;;
      s3)
        s3_url=$(cs_s3_endpoint) || return 1
        printf 'export CALLSCRIPT_S3_ENDPOINT=%q\n' "$s3_url"
        printf 'export AWS_ACCESS_KEY_ID=%q\n' "$CS_S3_ACCESS_KEY"
        printf 'export AWS_SECRET_ACCESS_KEY=%q\n' "$CS_S3_SECRET_KEY"
        printf 'export AWS_REGION=%q\n' "$CS_S3_REGION"
        ;;
      *)
        cs_err "cs_print_exports: unknown group '$what'"
        return 1
        ;;
    esac
  done
}
