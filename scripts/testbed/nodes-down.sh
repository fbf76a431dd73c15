#!/usr/bin/env bash
# Stop the real nodes nodes-up.sh started and remove what they left on the host: their pods'
# processes (found by cgroup), containerd shims, mounts under .state/testbed, the network namespaces
# and the bridge (their veths and iptables rules go with them), the cgroups, the CNI result cache and
# log links, and the kernel tunables the kubelet changed. Called by cluster-down.sh; safe to run twice.
# Exits non-zero if a mount under the state dir could not be removed (the state must then not be deleted).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
NODES_DIR="$TESTBED_STATE/nodes"
[[ -d $NODES_DIR ]] || exit 0

# A pid is ours only while its command line names our state dir (pids get reused).
ours() { [[ -r /proc/$1/cmdline ]] && { tr '\0' ' ' < "/proc/$1/cmdline"; } 2>/dev/null | grep -qF "$TESTBED_STATE"; }
stop_pids() {  # TERM, then KILL after 5 s
  [[ $# -gt 0 ]] || return 0
  kill "$@" 2>/dev/null || true
  for _ in $(seq 50); do
    local alive=0 pid
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [[ $alive == 0 ]] && return 0
    sleep 0.1
  done
  kill -9 "$@" 2>/dev/null || true
}

nodes=()
for dir in "$NODES_DIR"/llmops-real-*/; do [[ -d $dir ]] && nodes+=("$(basename "$dir")"); done

# 1. the node agents first, so nothing restarts the containers
pids=()
for name in "${nodes[@]}"; do
  for agent in vllm-import kubelet kube-proxy device-plugin containerd; do
    f="$TESTBED_STATE/pids/$name-$agent.pid"
    [[ -f $f ]] || continue
    pid="$(cat "$f")"
    if kill -0 "$pid" 2>/dev/null && ours "$pid"; then pids+=("$pid"); fi
    rm -f "$f"
  done
done
stop_pids "${pids[@]}"

# 2. every process in the nodes' cgroups (the pods' containers), then the shims of our containerd
for name in "${nodes[@]}"; do
  for _ in 1 2 3 4 5; do
    mapfile -t procs < <(find /sys/fs/cgroup/pids/"$name" /sys/fs/cgroup/memory/"$name" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u)
    [[ ${#procs[@]} -gt 0 ]] || break
    kill -9 "${procs[@]}" 2>/dev/null || true
    sleep 0.2
  done
done
shims=()
for cmdline in /proc/[0-9]*/cmdline; do
  pid="${cmdline#/proc/}"; pid="${pid%/cmdline}"
  if { tr '\0' ' ' < "$cmdline"; } 2>/dev/null | grep -q "containerd-shim" && ours "$pid"; then shims+=("$pid"); fi
done
stop_pids "${shims[@]}"

# 3. mounts under the state dir (container rootfs, shm, pod network namespaces, volumes), deepest first
for _ in 1 2 3; do
  mapfile -t mounts < <(awk -v s="$TESTBED_STATE/" 'index($5, s) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
  [[ ${#mounts[@]} -gt 0 ]] || break
  for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
done
if awk -v s="$TESTBED_STATE/" 'index($5, s) == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
  die "mounts under $TESTBED_STATE remain; not removing the state"
fi

# 4. network: the node namespaces (with their veths, bridges and iptables rules) and the host bridge
for name in "${nodes[@]}"; do
  [[ -e /run/netns/$name ]] && ip netns del "$name"
done
# libcni's result cache (/var/lib/cni/results, not configurable through containerd 1.6): the entries
# naming our pods' network namespaces, which live under the state dir
if [[ -d /var/lib/cni/results ]]; then
  { grep -lF "$TESTBED_STATE/" /var/lib/cni/results/* 2>/dev/null || true; } | xargs -r rm -f
  find /var/lib/cni -depth -type d -empty -delete 2>/dev/null || true
fi
if [[ -f $NODES_DIR/bridge ]]; then
  ip link del "$(cat "$NODES_DIR/bridge")" 2>/dev/null || true
fi

# 5. cgroups, deepest first
for name in "${nodes[@]}"; do
  for ctrl in /sys/fs/cgroup/*/; do
    if [[ -d $ctrl$name ]]; then find "$ctrl$name" -depth -type d -exec rmdir {} + 2>/dev/null || true; fi
  done
done

# containerd 1.6 keeps shim sockets and fifos under /run/containerd whatever its config says; drop
# the directories left empty there
if [[ -d /run/containerd ]]; then find /run/containerd -depth -type d -empty -delete 2>/dev/null || true; fi

# 6. the kubelet's links to our pod logs, and the kernel tunables it changed
for link in /var/log/containers/*.log; do
  [[ -L $link && $(readlink "$link") == "$TESTBED_STATE"/* ]] && rm -f "$link"
done
if [[ -f $NODES_DIR/sysctl.orig ]]; then
  while IFS= read -r kv; do sysctl -qw "$kv" || true; done < "$NODES_DIR/sysctl.orig"
  rm -f "$NODES_DIR/sysctl.orig"
fi
log "real nodes stopped: ${nodes[*]:-none}"
