#!/usr/bin/env bash
# A real Hugging Face Hub mirror for the model cache's huggingface source (docs/testing.md, "Hugging Face
# mirror"): olah from PyPI (testbed/hf/requirements.txt, a self-hosted Hub mirror) in offline mode, serving
# the test model folder as the local git repository llmops/tiny-qwen2 (branch main) from its mirrors-path:
# the Hub API (/api/models/<repo>/revision/<rev>, /tree, /paths-info) and the files
# (/<repo>/resolve/<rev>/<file>) that huggingface_hub's snapshot_download calls under HF_ENDPOINT. Offline,
# olah never asks huggingface.co (not reachable here): it answers from its local mirrors only.
# Listens where MinIO does (lib.sh testbed_host: the real nodes' bridge, or loopback), state under
# .state/testbed/hf (olah.toml, the git repository, olah.log; endpoint, revision and venv: files a test
# reads), pid in .state/testbed/pids/hf.pid. Called by cluster-up.sh after s3-up.sh (TESTBED_HF=0 skips
# it); cluster-down.sh stops it by its pid file and removes the state.
# olah and its dependencies are installed once, exactly as pinned, into a venv under
# ~/.cache/llmops-inference/testbed/hf-<key> (the key hashes the pins and the host's Python).
# Env: TESTBED_HF_PORT (default 9410); TESTBED_HF_HOST (default: testbed_host); TESTBED_MODEL_DIR, the model
# folder to serve (default: the one s3-up.sh uploads, lib.sh testbed_model_dir).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

state="$TESTBED_STATE/hf"
pidfile="$TESTBED_STATE/pids/hf.pid"
port="${TESTBED_HF_PORT:-9410}"
host="${TESTBED_HF_HOST:-$(testbed_host)}"
endpoint="http://$host:$port"
repo_id=llmops/tiny-qwen2
requirements="$TESTBED_REPO_ROOT/testbed/hf/requirements.txt"
mkdir -p "$state" "$TESTBED_STATE/pids" "$TESTBED_CACHE"

# The venv: created at its final path (its scripts name it), complete once .complete exists; the lock
# keeps two beds (or a test and a bed) from installing into it at once.
key="$({ python3 -c 'import sys; print(sys.version)'; cat "$requirements"; } | sha256sum | cut -c1-16)"
venv="$TESTBED_CACHE/hf-$key"
(
  flock 9
  if [[ ! -f $venv/.complete ]]; then
    install_start=$SECONDS
    log "HF: installing $(grep -E '^olah==' "$requirements") and its pinned dependencies into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    nice -n 10 "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$requirements"
    touch "$venv/.complete"
    log "HF: venv installed in $((SECONDS - install_start))s"
  fi
) 9> "$venv.lock"

# The repository olah serves: <mirrors-path>/models/<org>/<name>, a bare git repository whose one commit
# holds the model folder's files (as plain blobs: olah reads LFS objects only from a work tree's
# .git/lfs). Author, committer and dates are fixed, so the same files give the same commit: rebuilt on
# every start and swapped in only when the commit differs.
model_dir="$(testbed_model_dir)"
mirror="$state/mirrors/models/$repo_id"
build="$state/mirror.tmp"
rm -rf "$build"
git_model() {
  GIT_DIR="$build" GIT_WORK_TREE="$model_dir" GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 \
    GIT_AUTHOR_NAME=llmops GIT_AUTHOR_EMAIL=testbed@llmops.invalid GIT_AUTHOR_DATE=2026-01-01T00:00:00Z \
    GIT_COMMITTER_NAME=llmops GIT_COMMITTER_EMAIL=testbed@llmops.invalid GIT_COMMITTER_DATE=2026-01-01T00:00:00Z \
    git "$@"
}
git init --quiet --bare --initial-branch=main "$build"
git_model add --all
git_model commit --quiet --message "$repo_id: the test bed's model folder"
revision="$(git_model rev-parse HEAD)"
files="$(git_model ls-tree -r --name-only HEAD | wc -l)"
rm -f "$build/index"
if [[ -d $mirror && $(git --git-dir="$mirror" rev-parse HEAD 2>/dev/null) == "$revision" ]]; then
  rm -rf "$build"
  log "HF: $repo_id unchanged (main = $revision, $files files of $model_dir)"
else
  mkdir -p "$(dirname "$mirror")"
  rm -rf "$mirror" && mv "$build" "$mirror"
  log "HF: $repo_id now holds $model_dir (main = $revision, $files files)"
fi

# offline: no request, start-up check or cache clean-up goes to huggingface.co; mirror-netloc is the
# address olah writes into its own URLs.
cat > "$state/olah.toml" << EOF
[basic]
host = "$host"
port = $port
repos-path = "$state/cache"
mirror-scheme = "http"
mirror-netloc = "$host:$port"
mirror-lfs-netloc = "$host:$port"
mirrors-path = ["$state/mirrors"]

[accessibility]
offline = true
EOF

running() { [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }
served_revision() { curl -fs "$endpoint/api/models/$repo_id/revision/main" | python3 -c 'import json, sys; print(json.load(sys.stdin)["sha"])'; }

if running && [[ $(cat "$state/endpoint" 2>/dev/null) == "$endpoint" ]] && served_revision > /dev/null 2>&1; then
  log "HF: olah already running on $endpoint (pid $(cat "$pidfile"))"
else
  if running; then  # started for another address (real nodes came or went): restart it there
    kill "$(cat "$pidfile")"; while running; do sleep 0.2; done
  fi
  start=$SECONDS
  log "HF: starting olah on $endpoint (offline, serving $state/mirrors)"
  (
    cd "$state"
    export HF_HUB_DISABLE_TELEMETRY=1
    exec nohup "$venv/bin/olah-cli" --config "$state/olah.toml" --log-path "$state/logs" > "$state/olah.log" 2>&1
  ) &
  echo $! > "$pidfile"
  echo "$endpoint" > "$state/endpoint"
  for _ in $(seq 240); do
    served_revision > /dev/null 2>&1 && break
    running || { tail -20 "$state/olah.log" >&2; die "olah exited; see $state/olah.log"; }
    sleep 0.25
  done
  served_revision > /dev/null 2>&1 || die "olah not answering on $endpoint after 60 s; see $state/olah.log"
  log "HF: olah ready in $((SECONDS - start))s"
fi
served="$(served_revision)" || die "olah on $endpoint does not serve $repo_id; see $state/olah.log"
[[ $served == "$revision" ]] || die "olah serves $repo_id at $served, not $revision"
echo "$revision" > "$state/revision"
echo "$venv" > "$state/venv"  # its huggingface_hub is the pinned client, for downloads on the host
log "HF: HF_ENDPOINT=$endpoint serves $repo_id (main = $revision)"
