#!/usr/bin/env bash
# The autoscaling loop test's parts, on demand (no other test needs them; a cold KEDA build costs ~8 min of
# 2 cores): KEDA's operator and metrics adapter (build.sh keda, KEDA_VERSION) and Debian's Prometheus, all
# three as host processes against the running bed (docs/testing.md, "Autoscaling loop").
#   - KEDA's CRDs, from the pinned module itself (config/crd/bases), and the namespace keda;
#   - a CA and a serving certificate made here (state dir keda/certs) for the operator's gRPC metrics service,
#     which the adapter dials, and for the adapter's external metrics API;
#   - the adapter serves external.metrics.k8s.io on the real nodes' bridge (10.213.0.1); the APIService reaches
#     it through a Service without selector and its EndpointSlice (the apiserver runs with
#     --enable-aggregator-routing, testbed/kwokctl.yaml), with the CA as caBundle;
#   - Prometheus scrapes every 2 s the targets the test writes into keda/targets/*.json (Debian's build has no
#     kubernetes_sd_configs, so the targets are files; their labels carry namespace and pod, as a PodMonitor's
#     relabelling would). Prints the Prometheus URL.
# cluster-down.sh stops the three by their pid files; scripts/testbed/keda-up.sh --down removes the cluster
# objects (CRDs, APIService) and stops them, so the rest of the bed looks as before.
#   scripts/testbed/keda-up.sh [--down]     (after cluster-up, with real nodes; TESTBED_KEDA_BUILD_ONLY=1 only builds
#                                             KEDA and installs Prometheus, without a bed)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
export PATH="$TESTBED_BIN:$PATH" KUBECONFIG="$TESTBED_KUBECONFIG"

state="$TESTBED_STATE/keda"
pids="$TESTBED_STATE/pids"
host=10.213.0.1
adapter_port=9430 operator_grpc=127.0.0.1:9431 prometheus_port=9420
prometheus_url="http://$host:$prometheus_port"
mkdir -p "$state/targets" "$pids"

running() { [[ -f $pids/$1.pid ]] && kill -0 "$(cat "$pids/$1.pid")" 2>/dev/null; }
stop() {
  local name
  for name in "$@"; do
    running "$name" || continue
    kill "$(cat "$pids/$name.pid")"
    for _ in $(seq 50); do running "$name" || break; sleep 0.2; done
    running "$name" && kill -9 "$(cat "$pids/$name.pid")"
    rm -f "$pids/$name.pid"
  done
}
crd_dir() {
  local dir
  dir="$(cd "$TESTBED_GO_DIR/keda" && GOFLAGS=-mod=mod go mod download -json "github.com/kedacore/keda/v2@$KEDA_VERSION" \
    | sed -n 's/.*"Dir": "\(.*\)",/\1/p')"
  [[ -d $dir/config/crd/bases ]] || die "no config/crd/bases in $dir"
  printf '%s/config/crd/bases\n' "$dir"
}

if [[ ${1:-} == --down ]]; then
  # the ScaledObjects first (their finalizer needs the operator), then what keda-up created
  kubectl delete scaledobjects.keda.sh --all-namespaces --all --wait=true --timeout=60s >/dev/null 2>&1 || true
  kubectl delete apiservice v1beta1.external.metrics.k8s.io --ignore-not-found >/dev/null
  stop keda-adapter keda-operator prometheus
  kubectl delete -f "$(crd_dir)" --ignore-not-found --wait=true --timeout=120s >/dev/null
  kubectl delete namespace keda --ignore-not-found --wait=false >/dev/null
  log "KEDA: stopped, its CRDs and APIService removed"
  exit 0
fi

# one build at a time (scripts/test.sh starts one in the background; the test runs this script too)
mkdir -p "$TESTBED_CACHE"
exec 9> "$TESTBED_CACHE/keda-up.lock"
flock 9
if ! command -v prometheus >/dev/null; then
  [[ $(id -u) == 0 ]] || die "prometheus not installed (Debian package prometheus)"
  log "installing Debian's prometheus"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus) >&2 \
    || die "apt-get install prometheus failed"
fi
bash "$TESTBED_REPO_ROOT/scripts/testbed/build.sh" keda >&2
[[ ${TESTBED_KEDA_BUILD_ONLY:-0} == 1 ]] && exit 0
ip -4 addr show dev llmtb0 2>/dev/null | grep -q "inet $host/" || die "no real nodes' bridge ($host); make cluster-up first"
[[ -s $TESTBED_KUBECONFIG ]] || die "no test bed ($TESTBED_KUBECONFIG); make cluster-up first"
start=$SECONDS

# Certificates: one CA, one serving certificate for both servers (the operator's gRPC service on loopback, the
# adapter on the bridge). KEDA reads ca.crt, tls.crt and tls.key from --cert-dir.
certs="$state/certs"
if [[ ! -s $certs/tls.key ]]; then
  rm -rf "$certs.tmp" && mkdir -p "$certs.tmp"
  (
    cd "$certs.tmp"
    umask 077
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=llmops-testbed-keda-ca" \
      -keyout ca.key -out ca.crt 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=keda-metrics-apiserver.keda.svc" -keyout tls.key -out tls.csr 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,IP:%s,DNS:keda-operator.keda.svc,DNS:keda-metrics-apiserver.keda.svc\n' "$host" > san.ext
    openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -extfile san.ext -out tls.crt 2>/dev/null
    rm -f tls.csr san.ext ca.srl
  )
  mv "$certs.tmp" "$certs"
fi

log "KEDA: CRDs of $KEDA_VERSION"
crds="$(crd_dir)"
kubectl apply --server-side --force-conflicts -f "$crds" >/dev/null
wait_established -f "$crds"
kubectl create namespace keda --dry-run=client -o yaml | kubectl apply -f - >/dev/null

# The operator watches every namespace; both find their own namespace (keda) in the environment, as in a pod.
export KEDA_CLUSTER_OBJECT_NAMESPACE=keda POD_NAMESPACE=keda WATCH_NAMESPACE=""
launch() {  # launch NAME ARGS...: a host process with its log in the state dir and its pid where cluster-down looks
  local name=$1; shift
  running "$name" && return 0
  # 9>&-: the servers must not inherit (and so hold for their lifetime) the build lock
  nohup "$@" > "$state/$name.log" 2>&1 9>&- &
  echo $! > "$pids/$name.pid"
}
launch keda-operator "$TESTBED_BIN/keda-operator" --kubeconfig="$TESTBED_KUBECONFIG" --cert-dir="$certs" \
  --metrics-bind-address=127.0.0.1:9432 --health-probe-bind-address=127.0.0.1:9433 \
  --metrics-service-bind-address="$operator_grpc" --enable-cert-rotation=false \
  --enable-webhook-patching=false --enable-apiservice-patching=false --zap-log-level=info
launch keda-adapter "$TESTBED_BIN/keda-adapter" --lister-kubeconfig="$TESTBED_KUBECONFIG" \
  --authentication-kubeconfig="$TESTBED_KUBECONFIG" --authorization-kubeconfig="$TESTBED_KUBECONFIG" \
  --secure-port="$adapter_port" --bind-address="$host" --cert-dir="$certs" \
  --tls-cert-file="$certs/tls.crt" --tls-private-key-file="$certs/tls.key" \
  --metrics-service-address="$operator_grpc" --port=9434

cat > "$state/prometheus.yml" <<EOF
global:
  scrape_interval: 2s
  evaluation_interval: 2s
scrape_configs:
  - job_name: engines
    file_sd_configs:
      - files: ["$state/targets/*.json"]
        refresh_interval: 2s
EOF
launch prometheus prometheus --config.file="$state/prometheus.yml" --storage.tsdb.path="$state/prometheus" \
  --web.listen-address="$host:$prometheus_port" --storage.tsdb.retention.time=1h

# The adapter behind the aggregator: a Service without selector, its EndpointSlice at the adapter, the APIService.
ca_bundle="$(base64 -w0 < "$certs/ca.crt")"
kubectl apply --server-side --force-conflicts -f - >/dev/null <<EOF
apiVersion: v1
kind: Service
metadata: {name: keda-metrics-apiserver, namespace: keda}
spec:
  ports: [{name: https, port: 443, targetPort: $adapter_port, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: keda-metrics-apiserver-host
  namespace: keda
  labels: {kubernetes.io/service-name: keda-metrics-apiserver}
addressType: IPv4
endpoints: [{addresses: ["$host"], conditions: {ready: true}}]
ports: [{name: https, port: $adapter_port, protocol: TCP}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.external.metrics.k8s.io}
spec:
  group: external.metrics.k8s.io
  version: v1beta1
  groupPriorityMinimum: 100
  versionPriority: 100
  service: {name: keda-metrics-apiserver, namespace: keda, port: 443}
  caBundle: $ca_bundle
EOF

available() {
  [[ $(kubectl get apiservice v1beta1.external.metrics.k8s.io \
    -o jsonpath='{.status.conditions[?(@.type=="Available")].status}' 2>/dev/null) == True ]]
}
for _ in $(seq 240); do
  available && curl -fs -o /dev/null "$prometheus_url/-/ready" && break
  for name in keda-operator keda-adapter prometheus; do
    running "$name" || { tail -20 "$state/$name.log" >&2; die "$name exited; see $state/$name.log"; }
  done
  sleep 0.5
done
available || die "external.metrics.k8s.io not Available after 120 s: $(kubectl get apiservice v1beta1.external.metrics.k8s.io -o jsonpath='{.status.conditions}')"
curl -fs -o /dev/null "$prometheus_url/-/ready" || die "Prometheus not ready on $prometheus_url; see $state/prometheus.log"
log "KEDA: operator, metrics adapter (external.metrics.k8s.io Available) and Prometheus up in $((SECONDS - start))s"
echo "$prometheus_url"
