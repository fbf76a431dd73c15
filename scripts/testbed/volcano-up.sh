#!/usr/bin/env bash
# Run the real Volcano scheduler (vc-scheduler from volcano.sh/volcano, built by build.sh volcano)
# out of cluster against the test bed, as scheduler "volcano": pods with schedulerName: volcano and
# a PodGroup (annotation scheduling.k8s.io/group-name) are gang-scheduled by it. The PodGroup and
# Queue CRDs come from ../shared/crds; the other CRDs its informers watch (HyperNode, Numatopology,
# ...) are applied from the pinned module in the module cache. Called by cluster-up.sh when
# TESTBED_VOLCANO=1. No webhooks/controller-manager: PodGroups are created by whoever creates pods,
# and a new Queue must be opened by hand (status.state: Open), as done here for root and default.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
export PATH="$TESTBED_BIN:$PATH" KUBECONFIG="$TESTBED_KUBECONFIG"
export GOWORK=off GOFLAGS=-mod=mod GOTOOLCHAIN=local

state="$TESTBED_STATE/volcano"
pidfile="$TESTBED_STATE/pids/vc-scheduler.pid"
mkdir -p "$state" "$TESTBED_STATE/pids"

if [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null \
   && curl -fs "http://127.0.0.1:$(cat "$state/healthz-port")/healthz" >/dev/null 2>&1; then
  log "Volcano scheduler already running (pid $(cat "$pidfile"))"
  exit 0
fi

volcano_dir="$(cd "$TESTBED_GO_DIR/volcano" && go list -m -f '{{.Dir}}' volcano.sh/volcano)"
[[ -d $volcano_dir ]] || die "volcano.sh/volcano $VOLCANO_VERSION not in the module cache; run scripts/testbed/build.sh volcano"
crds_dir="${TESTBED_CRDS_DIR:-$TESTBED_REPO_ROOT/../shared/crds}"
extra=()
for crd in "$volcano_dir"/config/crd/volcano/bases/*.yaml; do
  [[ -e $crds_dir/volcano/$(basename "$crd") ]] || extra+=(-f "$crd")
done
kubectl apply --server-side --force-conflicts "${extra[@]}" >/dev/null
wait_established crd --all

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
healthz_port="$(free_port)"; listen_port="$(free_port)"
echo "$healthz_port" > "$state/healthz-port"

log "Volcano: starting vc-scheduler $VOLCANO_VERSION"
nohup "$TESTBED_BIN/vc-scheduler" --kubeconfig "$TESTBED_KUBECONFIG" --scheduler-name volcano \
  --leader-elect=false --enable-healthz --healthz-address "127.0.0.1:$healthz_port" \
  --listen-address "127.0.0.1:$listen_port" --cache-dumper=false --plugins-dir "$state/plugins" \
  --scheduler-conf "$volcano_dir/installer/helm/chart/volcano/config/volcano-scheduler.conf" \
  > "$state/vc-scheduler.log" 2>&1 &
echo $! > "$pidfile"
for _ in $(seq 120); do
  curl -fs "http://127.0.0.1:$healthz_port/healthz" >/dev/null 2>&1 && break
  kill -0 "$(cat "$pidfile")" 2>/dev/null || { tail -20 "$state/vc-scheduler.log" >&2; die "vc-scheduler exited"; }
  sleep 0.5
done
curl -fs "http://127.0.0.1:$healthz_port/healthz" >/dev/null || die "vc-scheduler not healthy; see $state/vc-scheduler.log"
# The scheduler creates the root and default queues; vc-controller-manager (not run here) would then
# open them, and the scheduler allocates nothing in a queue whose status.state is not Open.
for queue in root default; do
  for _ in $(seq 60); do kubectl get queue "$queue" >/dev/null 2>&1 && break; sleep 0.5; done
  kubectl patch queue "$queue" --subresource=status --type=merge -p '{"status":{"state":"Open"}}' >/dev/null
done
log "Volcano: scheduler ready, queues root and default open"
