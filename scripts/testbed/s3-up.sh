#!/usr/bin/env bash
# A real S3 server for the model cache's s3 source (docs/testing.md, "S3 model source"): MinIO built
# from its Go module (build.sh minio), listening on the host side of the real nodes' bridge
# (10.213.0.1, which pods on llmops-real-* reach) or on 127.0.0.1 when no real node runs, with its data
# under .state/testbed/s3. Credentials are generated at the first start into a 0600 file there and
# reach the server through its environment only (never argv, never printed). Then bucket
# llmops-models is created and s3://llmops-models/tiny-qwen2/ made to hold the test model folder with
# MinIO's own client, mc (`mc mirror --overwrite --remove`: a second run uploads nothing). Called by
# cluster-up.sh; cluster-down.sh stops the server by its pid file and removes the state.
# Env: TESTBED_S3_PORT (default 9400); TESTBED_MODEL_DIR, the model folder to upload (default: the
# folder lib.sh's testbed_model_dir writes, once, under the state dir).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

state="$TESTBED_STATE/s3"
pidfile="$TESTBED_STATE/pids/s3.pid"
creds="$state/credentials.env"
port="${TESTBED_S3_PORT:-9400}"
bucket=llmops-models
prefix=tiny-qwen2
mkdir -p "$state/data" "$TESTBED_STATE/pids"

host="$(testbed_host)"
endpoint="http://$host:$port"

if [[ ! -s $creds ]]; then
  (
    umask 077
    # 20 + 40 characters from the kernel's CSPRNG, the shapes of AWS keys
    printf 'AWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n' \
      "$(tr -dc 'A-Z0-9' < /dev/urandom | head -c 20)" "$(tr -dc 'A-Za-z0-9' < /dev/urandom | head -c 40)" > "$creds"
  )
  log "S3: credentials generated into $creds (mode 0600)"
fi
chmod 600 "$creds"

running() { [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }
ready() { curl -fs -o /dev/null "$endpoint/minio/health/ready"; }

if running && [[ $(cat "$state/endpoint" 2>/dev/null) == "$endpoint" ]] && ready; then
  log "S3: MinIO already running on $endpoint (pid $(cat "$pidfile"))"
else
  if running; then  # started for another address (real nodes came or went): restart it there
    kill "$(cat "$pidfile")"; while running; do sleep 0.2; done
  fi
  bash "$TESTBED_REPO_ROOT/scripts/testbed/build.sh" minio
  start=$SECONDS
  log "S3: starting MinIO on $endpoint (data in $state/data)"
  (
    set -a
    # shellcheck source=/dev/null  # generated above
    source "$creds"
    set +a
    export MINIO_ROOT_USER="$AWS_ACCESS_KEY_ID" MINIO_ROOT_PASSWORD="$AWS_SECRET_ACCESS_KEY"
    unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
    # no web console, no update check, no phoning home: only the S3 API
    export MINIO_BROWSER=off MINIO_UPDATE=off MINIO_CALLHOME_ENABLE=off
    exec nohup "$TESTBED_BIN/minio" server --quiet --address "$host:$port" "$state/data" > "$state/minio.log" 2>&1
  ) &
  echo $! > "$pidfile"
  echo "$endpoint" > "$state/endpoint"
  for _ in $(seq 120); do
    ready && break
    running || { tail -20 "$state/minio.log" >&2; die "MinIO exited; see $state/minio.log"; }
    sleep 0.25
  done
  ready || die "MinIO not ready on $endpoint after 30 s; see $state/minio.log"
  log "S3: MinIO ready in $((SECONDS - start))s"
fi

# The model folder: TESTBED_MODEL_DIR, else the tiny Qwen2 written once under the state dir.
model_dir="$(testbed_model_dir)"
# mc reads the alias (with the keys) from MC_HOST_<alias> in its environment, not from argv.
upload_start=$SECONDS
mirrored="$(
  set -a
  # shellcheck source=/dev/null  # generated above
  source "$creds"
  set +a
  export MC_HOST_testbed="http://$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY@$host:$port"
  secret="$AWS_SECRET_ACCESS_KEY"
  unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
  mc() { "$TESTBED_BIN/mc" --config-dir "$state/mc" --no-color --quiet "$@" 2>&1; }
  rc=0
  out="$(mc mb --ignore-existing "testbed/$bucket")" && out="$(mc mirror --overwrite --remove --json "$model_dir" "testbed/$bucket/$prefix")" || rc=$?
  printf '%s\n' "${out//"$secret"/<secret>}"  # whatever mc prints, never the key
  exit "$rc"
)" || die "uploading $model_dir to s3://$bucket/$prefix/ failed: $mirrored"
uploaded="$(grep -c '"source"' <<< "$mirrored" || true)"
log "S3: s3://$bucket/$prefix/ holds $model_dir: $uploaded file(s) uploaded in $((SECONDS - upload_start))s"
