#!/usr/bin/env bash
# Entrypoint of the callscript GPU image (Dockerfile.gpu) on a RunPod Pod, or any GPU host.
#
#   start.sh [worker] [WORKER-ARGS...]   check the setup, then run `callscript worker` (one per
#                                        GPU), e.g. `start.sh --until-idle`
#   start.sh COMMAND [ARGS...]           run any other `callscript` command as is, e.g.
#                                        `start.sh migrate` from a deploy step
#
# Before the workers start it:
#   1. checks the required settings (DATABASE_URL, CALLSCRIPT_STORAGE);
#   2. fills in pod defaults: CALLSCRIPT_DEVICE=cuda, CALLSCRIPT_LOG=info, the worker id from
#      RUNPOD_POD_ID and CALLSCRIPT_GRACE_SECONDS=4 on RunPod (spot pods get ~5 s between
#      SIGTERM and SIGKILL);
#   3. runs `callscript migrate --check` (the pod never migrates; a deploy step does);
#   4. resolves CALLSCRIPT_MODEL: a Hugging Face hub id (org/name[@revision]) is downloaded
#      once into $CALLSCRIPT_MODEL_CACHE (default: callscript/models on the network volume,
#      /workspace on Pods, /runpod-volume on Serverless) and CALLSCRIPT_MODEL is pointed at
#      that folder (the binary itself never downloads);
#   5. runs `callscript doctor` (database, storage, model, device) and stops if it fails;
#   6. starts one worker per GPU (RUNPOD_GPU_COUNT, else `nvidia-smi -L`), each with
#      CALLSCRIPT_DEVICE=cuda:I, worker id suffixed -gpuI and metrics port +I; SIGTERM/SIGINT
#      are passed on to all of them. One GPU: the worker replaces this script (exec).
#
# Settings of this script only (the worker's own are in runpod/README.md):
#   CALLSCRIPT_MODEL_CACHE   where hub models are downloaded to
#   CALLSCRIPT_MODEL_LOCK_WAIT  seconds to wait for another pod's download (default 7200)
#   CALLSCRIPT_GPUS          number of workers to start (overrides the GPU count)
#   CALLSCRIPT_USER          user to run as when started as root (default callscript; empty:
#                            stay root)
#   HF_TOKEN, HF_ENDPOINT    Hugging Face token (gated or private models) and hub address
#   CALLSCRIPT_BIN           the callscript binary (default: callscript on PATH)
set -euo pipefail
if ((BASH_VERSINFO[0] < 5 || (BASH_VERSINFO[0] == 5 && BASH_VERSINFO[1] < 1))); then
  printf '[start.sh] error: bash 5.1 or newer is needed (this is %s)\n' "$BASH_VERSION" >&2
  exit 1
fi

BIN=${CALLSCRIPT_BIN:-callscript}
DEFAULT_MODEL=openai/whisper-large-v3-turbo
HF_ENDPOINT=${HF_ENDPOINT:-https://huggingface.co}

log() { printf '[start.sh] %s\n' "$*" >&2; }
die() {
  printf '[start.sh] error: %s\n' "$*" >&2
  exit 1
}

# ---------------------------------------------------------------------------
# settings
# ---------------------------------------------------------------------------

check_settings() {
  local missing=0
  if [[ -z ${DATABASE_URL:-} ]]; then
    printf '[start.sh] error: DATABASE_URL is not set: the Postgres URL of the queue,\n' >&2
    printf '           e.g. postgres://callscript_pipeline:PASSWORD@HOST:5432/callscript\n' >&2
    printf '           (keep it in a RunPod secret: DATABASE_URL={{ RUNPOD_SECRET_database_url }})\n' >&2
    missing=1
  fi
  if [[ -z ${CALLSCRIPT_STORAGE:-} ]]; then
    printf '[start.sh] error: CALLSCRIPT_STORAGE is not set: where the recordings are,\n' >&2
    printf '           s3://BUCKET[/PREFIX] (with AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,\n' >&2
    printf '           and CALLSCRIPT_S3_ENDPOINT for a non-AWS store) or a directory\n' >&2
    missing=1
  fi
  ((missing == 0)) || exit 1
  if [[ $CALLSCRIPT_STORAGE == s3://* ]]; then
    if [[ -n ${AWS_ACCESS_KEY_ID:-} && -z ${AWS_SECRET_ACCESS_KEY:-} ]] ||
      [[ -z ${AWS_ACCESS_KEY_ID:-} && -n ${AWS_SECRET_ACCESS_KEY:-} ]]; then
      die "set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for $CALLSCRIPT_STORAGE, or neither"
    fi
    [[ -n ${AWS_ACCESS_KEY_ID:-} ]] ||
      log "warning: AWS_ACCESS_KEY_ID is not set; the S3 client looks for credentials elsewhere"
  fi
}

apply_defaults() {
  export CALLSCRIPT_DEVICE=${CALLSCRIPT_DEVICE:-cuda}
  export CALLSCRIPT_LOG=${CALLSCRIPT_LOG:-info}
  if [[ -n ${RUNPOD_POD_ID:-} ]]; then
    export CALLSCRIPT_WORKER_ID=${CALLSCRIPT_WORKER_ID:-$RUNPOD_POD_ID}
    # Spot pods: about 5 s from SIGTERM to SIGKILL; release the leases before that.
    export CALLSCRIPT_GRACE_SECONDS=${CALLSCRIPT_GRACE_SECONDS:-4}
  fi
}

# The network volume: /workspace on Pods, /runpod-volume on Serverless (if writable).
volume_dir() {
  local d
  for d in /workspace /runpod-volume; do
    if [[ -d $d && -w $d ]]; then
      printf '%s\n' "$d"
      return 0
    fi
  done
  return 1
}

# ---------------------------------------------------------------------------
# database schema
# ---------------------------------------------------------------------------

check_schema() {
  local out rc=0
  out=$("$BIN" migrate --check 2>&1) || rc=$?
  if ((rc != 0)); then
    printf '%s\n' "$out" >&2
    log "error: \`callscript migrate --check\` failed (exit $rc)."
    log "If it lists pending migrations, the database schema is behind this image. This pod"
    log "does not migrate by itself: run \`callscript migrate\` once from your deploy step, with"
    log "this image and the same DATABASE_URL (e.g. docker run --rm -e DATABASE_URL=..."
    log "IMAGE migrate), then restart the pod."
    exit 1
  fi
  [[ -z $out ]] || printf '%s\n' "$out" >&2
}

# ---------------------------------------------------------------------------
# model
# ---------------------------------------------------------------------------

# Is $1 a hub id (org/name or org/name@revision) rather than a path?
is_hub_id() {
  [[ $1 =~ ^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*(@[A-Za-z0-9._-]+)?$ ]] &&
    [[ ! -e ${1%@*} && ! -e $1 ]]
}

# hf_get URL OUT: download URL to OUT; prints the HTTP status. Headers go to OUT.headers.
hf_get() {
  local url=$1 out=$2
  local -a auth=()
  [[ -z ${_AUTH_HEADER:-} ]] || auth=(-H "@$_AUTH_HEADER")
  curl -sS -L --retry 5 --retry-delay 3 --retry-connrefused --connect-timeout 30 \
    --speed-limit 10240 --speed-time 120 "${auth[@]}" \
    -D "$out.headers" -o "$out" -w '%{http_code}' "$url"
}

# fetch_file REPO REV FILE DIR REQUIRED: download FILE into DIR; returns 3 when the repository
# has no such file (404) and it is not REQUIRED. LFS files are checked against their sha256.
fetch_file() {
  local repo=$1 rev=$2 file=$3 dir=$4 required=$5 code sha got
  local url="$HF_ENDPOINT/$repo/resolve/$rev/$file" out="$dir/$file.part"
  if ! code=$(hf_get "$url" "$out"); then
    die "downloading $url failed (network?)"
  fi
  case $code in
    200) ;;
    404)
      rm -f "$out" "$out.headers"
      ((required)) && die "$repo@$rev has no $file ($url: 404)"
      return 3
      ;;
    401 | 403)
      die "$url: HTTP $code: a gated or private model; set HF_TOKEN (accept the model's terms first)"
      ;;
    *) die "$url: HTTP $code" ;;
  esac
  # The hub's first answer carries the sha256 of LFS files (weights) as X-Linked-Etag.
  sha=$(tr -d '"\r' <"$out.headers" | awk 'tolower($1) == "x-linked-etag:" { print $2; exit }')
  if [[ $sha =~ ^[0-9a-f]{64}$ ]]; then
    got=$(sha256sum "$out") || die "sha256sum $out failed"
    [[ ${got%% *} == "$sha" ]] || die "$file from $repo@$rev: sha256 ${got%% *}, expected $sha"
  fi
  if [[ -z ${_COMMIT:-} ]]; then
    _COMMIT=$(tr -d '\r' <"$out.headers" | awk 'tolower($1) == "x-repo-commit:" { print $2; exit }')
  fi
  rm -f "$out.headers"
  mv -f "$out" "$dir/$file"
}

# The shard files a model.safetensors.index.json lists.
index_shards() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import json, sys
print("\n".join(sorted(set(json.load(open(sys.argv[1]))["weight_map"].values()))))' "$1"
  else
    grep -o '"[^"]*\.safetensors"' "$1" | tr -d '"' | sort -u
  fi
}

# download_model REPO REV DEST: fill DEST (absent) from the hub, through a temp folder renamed
# into place when every file is there. The caller holds the lock.
download_model() {
  local repo=$1 rev=$2 dest=$3 tmp f start=$SECONDS
  local -a shards
  tmp=$(mktemp -d "$dest.tmp.XXXXXX") || die "cannot create a folder beside $dest"
  chmod 755 "$tmp"
  _TMP_DIRS+=("$tmp")
  _COMMIT=""
  _AUTH_HEADER=""
  if [[ -n ${HF_TOKEN:-} ]]; then
    _AUTH_HEADER="$tmp/.auth" # in a file, so the token is not on curl's command line
    (umask 077 && printf 'Authorization: Bearer %s\n' "$HF_TOKEN" >"$_AUTH_HEADER")
  fi
  log "downloading $repo@$rev from $HF_ENDPOINT into $dest (once; later starts reuse it)"
  fetch_file "$repo" "$rev" config.json "$tmp" 1
  fetch_file "$repo" "$rev" tokenizer.json "$tmp" 1
  fetch_file "$repo" "$rev" generation_config.json "$tmp" 1
  fetch_file "$repo" "$rev" preprocessor_config.json "$tmp" 0 || true
  if ! fetch_file "$repo" "$rev" model.safetensors "$tmp" 0; then
    fetch_file "$repo" "$rev" model.safetensors.index.json "$tmp" 1
    mapfile -t shards < <(index_shards "$tmp/model.safetensors.index.json")
    ((${#shards[@]})) || die "$repo: model.safetensors.index.json lists no shard"
    for f in "${shards[@]}"; do
      [[ $f =~ ^[A-Za-z0-9][A-Za-z0-9._-]*\.safetensors$ ]] || die "$repo: odd shard name '$f'"
      fetch_file "$repo" "$rev" "$f" "$tmp" 1
    done
  fi
  rm -f "$tmp/.auth"
  printf 'repo=%s\nrevision=%s\ncommit=%s\nfetched=%s\n' "$repo" "$rev" "${_COMMIT:-unknown}" \
    "$(date -u +%FT%TZ)" >"$tmp/.callscript-source"
  mv -T "$tmp" "$dest" || die "cannot move $tmp to $dest"
  log "model ready in $dest ($(du -sh "$dest" | cut -f1), $((SECONDS - start)) s)"
}

# Point CALLSCRIPT_MODEL at a local folder, downloading a hub id once.
resolve_model() {
  local model=${CALLSCRIPT_MODEL:-} cache repo rev name dest lock lock_fd
  if [[ -z $model ]]; then
    model=$DEFAULT_MODEL
    log "CALLSCRIPT_MODEL is not set: using $model"
  fi
  if ! is_hub_id "$model"; then
    [[ -e $model ]] || die "CALLSCRIPT_MODEL=$model: no such file or folder (nor a hub id org/name)"
    export CALLSCRIPT_MODEL=$model
    return 0
  fi
  [[ $model == "${CALLSCRIPT_MODEL:-}" ]] &&
    log "CALLSCRIPT_MODEL=$model is not a file or folder here: taking it as a Hugging Face hub id"
  repo=${model%@*}
  rev=main
  [[ $model != *@* ]] || rev=${model#*@}
  name=${repo/\//--}
  [[ $rev == main ]] || name="$name--$rev"
  if [[ -n ${CALLSCRIPT_MODEL_CACHE:-} ]]; then
    cache=$CALLSCRIPT_MODEL_CACHE
  elif cache=$(volume_dir); then
    cache="$cache/callscript/models"
  else
    cache="${XDG_CACHE_HOME:-$HOME/.cache}/callscript/models"
    log "no network volume (/workspace, /runpod-volume): the model goes to $cache, lost with the container"
  fi
  dest="$cache/$name"
  if [[ ! -d $dest ]]; then
    command -v curl >/dev/null 2>&1 || die "curl is needed to download $model"
    mkdir -p "$cache" || die "cannot create $cache"
    lock="$cache/.$name.lock"
    exec {lock_fd}>"$lock" || die "cannot open $lock"
    if ! flock -n "$lock_fd"; then
      log "another process is downloading $model ($lock): waiting"
      flock -w "${CALLSCRIPT_MODEL_LOCK_WAIT:-7200}" "$lock_fd" ||
        die "gave up waiting for $lock"
    fi
    if [[ ! -d $dest ]]; then
      rm -rf -- "$dest".tmp.* # left by a download that was killed (we hold the lock)
      download_model "$repo" "$rev" "$dest"
    fi
    exec {lock_fd}>&-
  fi
  log "model: $model -> $dest"
  export CALLSCRIPT_MODEL=$dest
  # Transcripts and usage name the hub id, not the cache folder.
  export CALLSCRIPT_MODEL_NAME=${CALLSCRIPT_MODEL_NAME:-$model}
}

# ---------------------------------------------------------------------------
# CUDA libraries
# ---------------------------------------------------------------------------

# The runtime image has cuBLAS, cuRAND and NVRTC on the loader path. Elsewhere (the binary
# copied onto another image) look for them in the usual places, a CUDA toolkit or the wheels of
# a PyTorch install, and add the first folder that has them to LD_LIBRARY_PATH.
ensure_cuda_libs() {
  local exe missing dir py_dir
  exe=$(command -v "$BIN") || die "$BIN is not on PATH"
  missing=$(ldd "$exe" 2>/dev/null | awk '/not found/ { print $1 }') || return 0
  [[ -n $missing ]] || return 0
  if grep -q '^libcuda\.so' <<<"$missing"; then
    die "libcuda.so.1 (the NVIDIA driver) is not in this container: run it with a GPU" \
      "(docker run --gpus all; on RunPod, a GPU pod)"
  fi
  local -a candidates=(/usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib)
  if command -v python3 >/dev/null 2>&1 &&
    py_dir=$(python3 -c 'import nvidia, os; print(os.path.dirname(nvidia.__path__[0]))' 2>/dev/null); then
    candidates+=("$py_dir/nvidia/cu13/lib")
  fi
  for dir in "${candidates[@]}"; do
    if [[ -e $dir/libcublas.so.13 && -e $dir/libnvrtc.so.13 ]]; then
      log "CUDA libraries from $dir"
      export LD_LIBRARY_PATH="$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
      return 0
    fi
  done
  die "missing CUDA 13 libraries ($(tr '\n' ' ' <<<"$missing")): use the CUDA 13 runtime image or set LD_LIBRARY_PATH"
}

# ---------------------------------------------------------------------------
# workers
# ---------------------------------------------------------------------------

gpu_count() {
  local n
  if [[ -n ${CALLSCRIPT_GPUS:-} ]]; then
    n=$CALLSCRIPT_GPUS
  elif [[ $CALLSCRIPT_DEVICE != cuda ]]; then
    n=1 # cpu, or one chosen GPU (cuda:N)
  elif [[ -n ${RUNPOD_GPU_COUNT:-} ]]; then
    n=$RUNPOD_GPU_COUNT
  elif command -v nvidia-smi >/dev/null 2>&1; then
    n=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ') || n=1
  else
    n=1
  fi
  if [[ ! $n =~ ^[0-9]+$ ]] || ((n < 1)); then
    die "GPU count '$n' is not a positive number"
  fi
  printf '%s\n' "$n"
}

# The pids of the running workers, their GPU by pid; set by start_workers.
declare -a PIDS=()
declare -A GPU_OF=()
SIGNALLED=0

forward() {
  SIGNALLED=1
  log "got SIG$1: stopping ${#PIDS[@]} worker(s) (they release their leases)"
  # Always as SIGTERM: background jobs of a script start with SIGINT ignored.
  ((${#PIDS[@]} == 0)) || kill -TERM "${PIDS[@]}" 2>/dev/null || true
}

start_workers() {
  local n=$1 i metrics_host="" metrics_port="" threads=""
  shift
  local base_id=${CALLSCRIPT_WORKER_ID:-${HOSTNAME:-worker}}
  if [[ -n ${CALLSCRIPT_METRICS_ADDR:-} ]]; then
    metrics_host=${CALLSCRIPT_METRICS_ADDR%:*}
    metrics_port=${CALLSCRIPT_METRICS_ADDR##*:}
    [[ $metrics_port =~ ^[0-9]+$ ]] || die "CALLSCRIPT_METRICS_ADDR=$CALLSCRIPT_METRICS_ADDR: want HOST:PORT"
  fi
  if [[ -z ${CALLSCRIPT_THREADS:-} ]]; then
    # share the CPUs (audio decoding, features) between the workers
    threads=$(( ${RUNPOD_CPU_COUNT:-$(nproc)} / n ))
    ((threads >= 1)) || threads=1
  fi
  trap 'forward TERM' TERM
  trap 'forward INT' INT
  local -a wenv
  for ((i = 0; i < n; i++)); do
    wenv=(CALLSCRIPT_DEVICE="cuda:$i" CALLSCRIPT_WORKER_ID="$base_id-gpu$i")
    [[ -z $metrics_port ]] || wenv+=(CALLSCRIPT_METRICS_ADDR="$metrics_host:$((metrics_port + i))")
    [[ -z $threads ]] || wenv+=(CALLSCRIPT_THREADS="$threads")
    env "${wenv[@]}" "$BIN" worker "$@" &
    PIDS+=("$!")
    GPU_OF[$!]=$i
    log "worker gpu$i: pid $!, device cuda:$i, id $base_id-gpu$i${metrics_port:+, metrics :$((metrics_port + i))}"
  done
}

# Wait for every worker. The first one to fail stops the others; exit 1 if any failed.
wait_workers() {
  local rc pid failed=0 stopping=0
  while ((${#PIDS[@]})); do
    rc=0
    pid=""
    wait -n -p pid "${PIDS[@]}" || rc=$?
    if [[ -z ${pid:-} ]]; then # interrupted by a signal (the trap ran): wait again
      ((SIGNALLED)) && {
        SIGNALLED=0
        continue
      }
      break # nothing left to wait for
    fi
    local -a rest=()
    local p
    for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || rest+=("$p"); done
    PIDS=("${rest[@]}")
    if ((rc == 0)); then
      log "worker gpu${GPU_OF[$pid]} (pid $pid) exited"
    else
      failed=1
      log "worker gpu${GPU_OF[$pid]} (pid $pid) failed (exit $rc)"
      if ((!stopping && ${#PIDS[@]})); then
        stopping=1
        log "stopping the other workers"
        kill -TERM "${PIDS[@]}" 2>/dev/null || true
      fi
    fi
  done
  return "$failed"
}

# ---------------------------------------------------------------------------

# The image starts as root so that it can make its folder on the network volume (RunPod mounts
# /workspace and /runpod-volume owned by root), then runs everything as the unprivileged user
# $CALLSCRIPT_USER (default callscript, made by Dockerfile.gpu). Not root already, or no such
# user (another image), or CALLSCRIPT_USER= (empty): run as is.
drop_privileges() {
  local user=${CALLSCRIPT_USER-callscript} dir home
  ((EUID == 0)) && [[ -n $user ]] || return 0
  id -u "$user" >/dev/null 2>&1 || return 0
  local -a dirs=()
  if [[ -n ${CALLSCRIPT_MODEL_CACHE:-} ]]; then
    dirs+=("$CALLSCRIPT_MODEL_CACHE")
  elif dir=$(volume_dir); then
    dirs+=("$dir/callscript")
  fi
  for dir in "${dirs[@]}"; do
    mkdir -p "$dir" || die "cannot create $dir"
    # hand over what an earlier run as root left there
    find "$dir" ! -user "$user" -exec chown -h "$user:" {} + || die "cannot chown $dir to $user"
  done
  home=$(getent passwd "$user" | cut -d: -f6)
  exec setpriv --reuid="$(id -u "$user")" --regid="$(id -g "$user")" --init-groups \
    env HOME="${home:-/tmp}" USER="$user" LOGNAME="$user" bash "${BASH_SOURCE[0]}" "$@"
}

main() {
  drop_privileges "$@"
  if [[ $# -gt 0 && $1 != -* && $1 != worker ]]; then
    exec "$BIN" "$@" # another command (migrate, doctor, queue ...): no pod logic
  fi
  [[ ${1:-} != worker ]] || shift

  check_settings
  apply_defaults
  command -v "$BIN" >/dev/null 2>&1 || die "$BIN not found on PATH"
  ensure_cuda_libs
  check_schema
  resolve_model
  local -a doctor_args=()
  local arg
  for arg in "$@"; do
    # a worker that does not diarize needs no speaker encoder
    [[ $arg != --no-diarize ]] || doctor_args+=(--no-diarize)
  done
  log "checking database, storage, model and device (callscript doctor)"
  if ! "$BIN" doctor "${doctor_args[@]}"; then
    die "callscript doctor failed (above): fix the setting it names and restart the pod"
  fi

  local n
  n=$(gpu_count)
  if ((n == 1)); then
    log "starting the worker (${CALLSCRIPT_WORKER_ID:-default id}, $CALLSCRIPT_DEVICE)"
    exec "$BIN" worker "$@"
  fi
  [[ $CALLSCRIPT_DEVICE == cuda ]] || die "CALLSCRIPT_GPUS=$n needs CALLSCRIPT_DEVICE=cuda (now $CALLSCRIPT_DEVICE)"
  start_workers "$n" "$@"
  wait_workers || exit 1
  log "all workers exited"
}

declare -a _TMP_DIRS=()
cleanup() {
  local d
  # never leave workers behind if this script stops early
  ((${#PIDS[@]} == 0)) || kill -TERM "${PIDS[@]}" 2>/dev/null || true
  for d in "${_TMP_DIRS[@]}"; do
    [[ ! -d $d ]] || rm -rf -- "$d"
  done
}
trap cleanup EXIT

main "$@"
