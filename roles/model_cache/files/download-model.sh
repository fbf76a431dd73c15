#!/bin/sh
# Fill, verify or wait for one model folder of the llmops.inference model cache.
#   download-model.sh download   download unless the folder is already complete, then verify
#   download-model.sh wait       wait until another pod (a download or staging Job) has completed and verified
#                                the folder for this source and revision (the stamp in .llmops-complete)
#   download-model.sh verify     exit 0 only when the folder is complete
# Settings come from the environment: LLMOPS_SOURCE (huggingface|modelscope|s3), LLMOPS_MODEL_ID,
# LLMOPS_REVISION, LLMOPS_MODEL_DIR, LLMOPS_S3_URI, LLMOPS_PIP_INSTALL (true|false);
# the tools' own variables pass through (HF_ENDPOINT, HF_TOKEN, MODELSCOPE_DOMAIN, AWS_*, PIP_INDEX_URL).
# Exit status 3: a failure retrying cannot fix (refused credentials, no such bucket, unknown source, missing
# client); the download Job's podFailurePolicy fails the Job on it at once instead of retrying for minutes.
set -eu
PERMANENT=3

# The outcome line also goes to the container's termination message (the pod's status shows it); on a failure
# the pod uses the tail of this log instead (terminationMessagePolicy FallbackToLogsOnError).
outcome() {
  echo "$1"
  if [ -f /dev/termination-log ] && [ -w /dev/termination-log ]; then echo "$1" > /dev/termination-log; fi
}

MODE="${1:-download}"
DIR="${LLMOPS_MODEL_DIR:?LLMOPS_MODEL_DIR is not set}"
MARKER="$DIR/.llmops-complete"
STAMP="${LLMOPS_SOURCE:-}|${LLMOPS_MODEL_ID:-}|${LLMOPS_REVISION:-}|${LLMOPS_S3_URI:-}"

# A folder is complete when config.json is there and every shard the weight index names exists.
verify() {
  if [ ! -s "$DIR/config.json" ]; then
    echo "incomplete: $DIR/config.json is missing"; return 1
  fi
  for index in model.safetensors.index.json pytorch_model.bin.index.json; do
    if [ -f "$DIR/$index" ]; then
      shards=$(grep -oE '"[^"]*\.(safetensors|bin)"' "$DIR/$index" | tr -d '"' | sort -u)
      if [ -z "$shards" ]; then
        echo "incomplete: $index names no weight files"; return 1
      fi
      count=0
      for shard in $shards; do
        if [ ! -s "$DIR/$shard" ]; then
          echo "incomplete: $shard (listed in $index) is missing"; return 1
        fi
        count=$((count + 1))
      done
      echo "complete: config.json and $count weight files of $index"
      return 0
    fi
  done
  for single in model.safetensors pytorch_model.bin; do
    if [ -s "$DIR/$single" ]; then
      echo "complete: config.json and $single"; return 0
    fi
  done
  echo "incomplete: no weight index (model.safetensors.index.json) and no single weight file in $DIR"
  return 1
}

ensure_python_module() {
  if python3 -c "import $1" 2>/dev/null; then return 0; fi
  if [ "${LLMOPS_PIP_INSTALL:-true}" != "true" ]; then
    echo "python module $1 is missing from the downloader image and pip install is off"; exit $PERMANENT
  fi
  python3 -m pip install --quiet "$2"
}

# One line every LLMOPS_PROGRESS_SECONDS (30): bytes on disk against the expected size (LLMOPS_MODEL_BYTES, an
# estimate from the plan), the rate and the time left. The tools' own progress bars redraw one line with \r, which
# a log tail (the pod_wait progress lines, kubectl logs --tail) cannot show.
progress() {
  start=$(date +%s)
  before=$(du -sk "$DIR" 2>/dev/null | cut -f1)
  # sleep's output to /dev/null: a sleep left behind by `kill` must not hold the log pipe open
  while sleep "${LLMOPS_PROGRESS_SECONDS:-30}" >/dev/null 2>&1; do
    kib=$(du -sk "$DIR" 2>/dev/null | cut -f1)
    awk -v k="${kib:-0}" -v b="${before:-0}" -v e="$(( ${LLMOPS_MODEL_BYTES:-0} / 1024 ))" \
        -v t="$(( $(date +%s) - start ))" 'BEGIN {
      rate = (k - b) / (t > 0 ? t : 1) / 1024
      line = sprintf("progress: %.1f GiB on disk", k / 1048576)
      if (e > 0) line = line sprintf(" of about %.1f GiB (%d%%)", e / 1048576, 100 * k / e)
      line = line sprintf(", %.0f MiB/s", rate)
      if (e > 0 && rate > 0 && k < e) line = line sprintf(", about %d min left", (e - k) / 1024 / rate / 60 + 1)
      print line
    }'
  done
}

download() {
  mkdir -p "$DIR"
  progress &
  PROGRESS=$!
  trap 'kill $PROGRESS 2>/dev/null || true' EXIT
  export HF_HUB_DISABLE_PROGRESS_BARS=1
  case "${LLMOPS_SOURCE:-}" in
    huggingface)
      ensure_python_module huggingface_hub huggingface_hub
      echo "downloading ${LLMOPS_MODEL_ID} from ${HF_ENDPOINT:-https://huggingface.co} into $DIR"
      python3 - <<'PY'
import os
from huggingface_hub import snapshot_download
snapshot_download(repo_id=os.environ["LLMOPS_MODEL_ID"], revision=os.environ.get("LLMOPS_REVISION") or None,
                  local_dir=os.environ["LLMOPS_MODEL_DIR"], max_workers=8)
PY
      ;;
    modelscope)
      ensure_python_module modelscope modelscope
      echo "downloading ${LLMOPS_MODEL_ID} from ModelScope into $DIR"
      python3 - <<'PY'
import os
from modelscope import snapshot_download
snapshot_download(os.environ["LLMOPS_MODEL_ID"], revision=os.environ.get("LLMOPS_REVISION") or None,
                  local_dir=os.environ["LLMOPS_MODEL_DIR"])
PY
      ;;
    s3)
      echo "syncing ${LLMOPS_S3_URI:?LLMOPS_S3_URI is not set} into $DIR${AWS_ENDPOINT_URL:+ from $AWS_ENDPOINT_URL}"
      # AWS CLI v2 reads AWS_ENDPOINT_URL itself only from 2.13 on (Debian bookworm ships 2.9.19): pass it.
      set -- s3 sync --only-show-errors "$LLMOPS_S3_URI" "$DIR"
      if [ -n "${AWS_ENDPOINT_URL:-}" ]; then set -- --endpoint-url "$AWS_ENDPOINT_URL" "$@"; fi
      errors="${TMPDIR:-/tmp}/llmops-s3-errors.$$"
      if ! aws "$@" 2>"$errors"; then
        cat "$errors"
        if grep -qE '\((InvalidAccessKeyId|SignatureDoesNotMatch|AccessDenied|NoSuchBucket|InvalidBucketName|AllAccessDisabled)\)' "$errors"; then
          echo "the S3 source refused the request (see above): retrying cannot help; check model_cache_s3_uri and the credentials"
          rm -f "$errors"; exit $PERMANENT
        fi
        rm -f "$errors"; exit 1
      fi
      rm -f "$errors"
      ;;
    *)
      echo "unknown LLMOPS_SOURCE '${LLMOPS_SOURCE:-}' (huggingface, modelscope or s3)"; exit $PERMANENT
      ;;
  esac
  kill $PROGRESS 2>/dev/null || true
}

case "$MODE" in
  verify)
    verify
    ;;
  wait)
    # The stamp names source, model and revision: a cache completed for another revision is not this one.
    until [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$STAMP" ] && verify; do
      if [ -f "$MARKER" ] && [ "$(cat "$MARKER")" != "$STAMP" ]; then
        echo "the cache in $DIR holds '$(cat "$MARKER")', waiting for '$STAMP'"
      else
        echo "waiting for the model download into $DIR"
      fi
      sleep "${LLMOPS_WAIT_INTERVAL:-15}"
    done
    ;;
  download)
    if [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$STAMP" ] && verify; then
      outcome "model cache is complete, skipping the download"; exit 0
    fi
    download
    verify
    printf '%s' "$STAMP" > "$MARKER"
    outcome "model cache ready in $DIR"
    ;;
  *)
    echo "usage: $0 download|wait|verify"; exit 2
    ;;
esac
