#!/usr/bin/env bash
# Run the real LeaderWorkerSet controller (sigs.k8s.io/lws, built by build.sh) out of cluster
# against the test bed, with its admission webhooks served on 127.0.0.1 behind a local CA and
# registered through URL-based webhook configurations (the pod webhook injects the LWS_* env and
# worker-index labels, so running without it would not be LWS). Called by cluster-up.sh.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
export PATH="$TESTBED_BIN:$PATH" KUBECONFIG="$TESTBED_KUBECONFIG"
export GOWORK=off GOFLAGS=-mod=mod GOTOOLCHAIN=local

state="$TESTBED_STATE/lws"
pidfile="$TESTBED_STATE/pids/lws-controller.pid"
mkdir -p "$state/certs" "$TESTBED_STATE/pids"

lws_dir="$(cd "$TESTBED_GO_DIR/lws" && go list -m -f '{{.Dir}}' sigs.k8s.io/lws)"
[[ -d $lws_dir ]] || die "sigs.k8s.io/lws $LWS_VERSION source not in the module cache; run scripts/testbed/build.sh lws"
# The LWS CRD comes from ../shared/crds (cluster-up); v0.9.0's manager also watches DisaggregatedSet,
# whose CRD only exists in the pinned module, so it is applied from there (not copied into the repo).
kubectl apply --server-side --force-conflicts \
  -f "$lws_dir/config/crd/bases/disaggregatedset.x-k8s.io_disaggregatedsets.yaml" >/dev/null
wait_established crd/disaggregatedsets.disaggregatedset.x-k8s.io

register_webhooks() {
  python3 "$TESTBED_REPO_ROOT/scripts/testbed/lws_webhooks.py" "$lws_dir" "$(cat "$state/webhook-port")" \
    "$state/certs/ca.crt" > "$state/webhooks.yaml"
  kubectl apply --server-side --force-conflicts -f "$state/webhooks.yaml" >/dev/null
}

if [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null \
   && curl -fs "http://127.0.0.1:$(cat "$state/probe-port")/readyz" >/dev/null 2>&1; then
  register_webhooks
  log "LWS controller already running (pid $(cat "$pidfile")), webhooks registered"
  exit 0
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
webhook_port="$(free_port)"; probe_port="$(free_port)"
echo "$webhook_port" > "$state/webhook-port"; echo "$probe_port" > "$state/probe-port"

log "LWS: local CA and serving certificate for 127.0.0.1"
certs="$state/certs"
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=llmops-testbed-lws-ca" \
  -keyout "$certs/ca.key" -out "$certs/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$certs/tls.key" -out "$certs/tls.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > "$certs/ext.cnf"
openssl x509 -req -in "$certs/tls.csr" -CA "$certs/ca.crt" -CAkey "$certs/ca.key" -CAcreateserial -days 30 \
  -extfile "$certs/ext.cnf" -out "$certs/tls.crt" 2>/dev/null

cat > "$state/config.yaml" <<YAML
apiVersion: config.lws.x-k8s.io/v1alpha1
kind: Configuration
leaderElection:
  leaderElect: false
internalCertManagement:
  enable: false
webhook:
  host: 127.0.0.1
  port: $webhook_port
  certDir: $certs
metrics:
  bindAddress: "0"
health:
  healthProbeBindAddress: 127.0.0.1:$probe_port
YAML

log "LWS: starting lws-controller $LWS_VERSION (webhooks on https://127.0.0.1:$webhook_port)"
nohup "$TESTBED_BIN/lws-controller" --config "$state/config.yaml" --kubeconfig "$TESTBED_KUBECONFIG" \
  > "$state/lws-controller.log" 2>&1 &
echo $! > "$pidfile"
for _ in $(seq 120); do
  curl -fs "http://127.0.0.1:$probe_port/readyz" >/dev/null 2>&1 && break
  kill -0 "$(cat "$pidfile")" 2>/dev/null || { tail -20 "$state/lws-controller.log" >&2; die "lws-controller exited"; }
  sleep 0.5
done
curl -fs "http://127.0.0.1:$probe_port/readyz" >/dev/null || die "lws-controller not ready; see $state/lws-controller.log"

register_webhooks
log "LWS: controller ready, webhooks registered"
