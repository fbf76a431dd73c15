# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place that turns rdma_check's facts into the NCCL/GLOO environment of the serving pods.

rdma_check returns the result as `nccl_env`, the filter `llmops.inference.nccl_env` computes it in
Jinja from a stored `llmops_rdma`, and nccl_check runs its sweep with it: all three call
nccl_env_from_rdma, so the check measures exactly what the pods will get.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

MANAGED_VARIABLES = (
    "NCCL_IB_HCA",
    "NCCL_IB_GID_INDEX",
    "NCCL_IB_DISABLE",
    "NCCL_NET_GDR_LEVEL",
    "NCCL_SOCKET_IFNAME",
    "GLOO_SOCKET_IFNAME",
    "NCCL_IB_TC",
    "NCCL_IB_SL",
)
# Variables naming the interface a process binds its TCP sockets to (bootstrap, Gloo, vLLM TP, HCCL host side,
# NVSHMEM's unique-id bootstrap that DeepEP uses).
SOCKET_IFNAME_VARIABLES = (
    "NCCL_SOCKET_IFNAME",
    "GLOO_SOCKET_IFNAME",
    "TP_SOCKET_IFNAME",
    "HCCL_SOCKET_IFNAME",
    "NVSHMEM_BOOTSTRAP_UID_SOCK_IFNAME",
)
# DeepEP's NVSHMEM variables, each the twin of an NCCL one (names read from the nvidia-nvshmem-cu12 3.8.0
# libraries: tests/unit/fixtures/nvshmem/env_names.json). DeepEP sets its own IBGDA/QP variables in buffer.py.
NVSHMEM_FROM_NCCL = (
    ("NCCL_IB_GID_INDEX", "NVSHMEM_IB_GID_INDEX"),
    ("NCCL_IB_TC", "NVSHMEM_IB_TRAFFIC_CLASS"),
    ("NCCL_IB_SL", "NVSHMEM_IB_SL"),
    ("NCCL_SOCKET_IFNAME", "NVSHMEM_BOOTSTRAP_UID_SOCK_IFNAME"),
)
NETWORK_MODES = ("pod", "host")
# The interface a pod on the cluster network sees (every CNI names it eth0 inside the pod).
POD_IFNAME = "eth0"


def _active_rdma_ports(devices):
    return [
        (dev, port)
        for dev in devices or []
        for port in dev.get("ports", [])
        if port.get("state") == "ACTIVE" and port.get("phys_state", "LinkUp") == "LinkUp"
    ]


def nccl_env_from_rdma(rdma_facts, overrides=None):
    """Environment variables (str -> str) for NCCL and GLOO from rdma_check's return value.

    - NCCL_IB_HCA: active ports only, '=' prefixed so mlx5_1 cannot also match mlx5_10..17 (NCCL
      matches HCA names as prefixes otherwise).
    - NCCL_IB_GID_INDEX: the RoCE v2 IPv4 GID index, only when the active ports are RoCE.
    - NCCL_IB_DISABLE: "0" with active ports, "1" without (NCCL then uses sockets between hosts).
    - NCCL_NET_GDR_LEVEL: "PHB" when GPUDirect RDMA is possible (peermem or DMA-BUF).
    - NCCL_IB_TC / NCCL_IB_SL: on RoCE, when the facts carry `traffic_class` / `service_level` (the
      fabric's lossless class; the site states it, a host cannot measure it).
    - NCCL_SOCKET_IFNAME / GLOO_SOCKET_IFNAME: `socket_ifname` of the facts (the default-route
      interface), right for a process on the host (nccl_check); pods get theirs from network_env().
    overrides: names to set (value str/int) or to drop (value None); applied last.
    """
    if not isinstance(rdma_facts, dict):
        raise LlmopsError(
            "nccl_env needs the dict rdma_check returns (llmops_rdma), got %s" % type(rdma_facts).__name__
        )
    if overrides is not None and not isinstance(overrides, dict):
        raise LlmopsError("nccl_env overrides must be a dict of variable -> value (None drops it)")
    env = {}
    ports = _active_rdma_ports(rdma_facts.get("devices"))
    if ports:
        env["NCCL_IB_DISABLE"] = "0"
        env["NCCL_IB_HCA"] = "=" + ",".join("%s:%d" % (dev["name"], port["port"]) for dev, port in ports)
        roce = [port for _dev, port in ports if port.get("link_layer") == "Ethernet"]
        if roce:
            indexes = {p.get("roce_v2_ipv4_gid_index") for p in roce}
            if None in indexes or len(indexes) != 1:
                raise LlmopsError(
                    "Active RoCE ports disagree on (or lack) a RoCE v2 IPv4 GID index: %s; "
                    "fix the GID tables or set NCCL_IB_GID_INDEX in overrides" % sorted(indexes, key=str)
                )
            env["NCCL_IB_GID_INDEX"] = str(indexes.pop())
            # RoCE fabrics put RDMA in a lossless (PFC/ECN) class: NCCL must mark its traffic with it.
            for key, name in (("traffic_class", "NCCL_IB_TC"), ("service_level", "NCCL_IB_SL")):
                if rdma_facts.get(key) not in (None, ""):
                    env[name] = str(int(rdma_facts[key]))
        if rdma_facts.get("gpudirect_rdma"):
            env["NCCL_NET_GDR_LEVEL"] = "PHB"
    else:
        env["NCCL_IB_DISABLE"] = "1"
    ifname = rdma_facts.get("socket_ifname")
    if ifname:
        env["NCCL_SOCKET_IFNAME"] = ifname
        env["GLOO_SOCKET_IFNAME"] = ifname
    for name, value in (overrides or {}).items():
        if value is None:
            env.pop(str(name), None)
        else:
            env[str(name)] = str(value)
    return env


def nvshmem_env(env):
    """DeepEP's NVSHMEM environment from an NCCL environment (nccl_env_from_rdma's, or the pods' llmops_nccl_env).

    Derived, never measured twice, so NVSHMEM and NCCL use the same ports and the same RoCE GID index:
    - NVSHMEM_HCA_LIST: NCCL_IB_HCA's ``name:port`` entries without NCCL's '=' exact-match mark (NVSHMEM takes
      names with their port, ``^`` to exclude);
    - NVSHMEM_IB_GID_INDEX / NVSHMEM_IB_TRAFFIC_CLASS / NVSHMEM_IB_SL: NCCL_IB_GID_INDEX / NCCL_IB_TC / NCCL_IB_SL;
    - NVSHMEM_BOOTSTRAP_UID_SOCK_IFNAME: NCCL_SOCKET_IFNAME (the pod's network_env sets both).
    Refused without RDMA: DeepEP's inter-node kernels need IB or RoCE (NCCL_IB_DISABLE=1 or no NCCL_IB_HCA).
    """
    if not isinstance(env, dict):
        raise LlmopsError("the NCCL env must be a dict of variable -> value, got %r" % (env,))
    hca = str(env.get("NCCL_IB_HCA") or "").strip()
    if str(env.get("NCCL_IB_DISABLE", "0")) == "1" or not hca:
        raise LlmopsError(
            "DeepEP (NVSHMEM) across nodes needs RDMA, but the NCCL env has %s: run the GPU node checks "
            "(rdma_check) on hosts with active IB/RoCE ports, or set moe_all_to_all none"
            % ("NCCL_IB_DISABLE=1" if str(env.get("NCCL_IB_DISABLE", "0")) == "1" else "no NCCL_IB_HCA")
        )
    exclude = hca.startswith("^")
    entries = [item.strip().lstrip("=") for item in hca.lstrip("^").lstrip("=").split(",") if item.strip()]
    result = {"NVSHMEM_HCA_LIST": ("^" if exclude else "") + ",".join(entries)}
    for nccl, nvshmem in NVSHMEM_FROM_NCCL:
        if env.get(nccl) not in (None, ""):
            result[nvshmem] = _ifname(env[nccl]) if nccl == "NCCL_SOCKET_IFNAME" else str(env[nccl])
    return result


def nvshmem_env_from_rdma(rdma_facts, overrides=None):
    """nvshmem_env of the NCCL env rdma_check's facts give (the same facts, the same GID index)."""
    return nvshmem_env(nccl_env_from_rdma(rdma_facts, overrides))


def with_nvshmem(env):
    """``env`` plus its NVSHMEM twins; a twin the env already sets to another value is refused, not replaced."""
    result = dict(env)
    for name, value in nvshmem_env(env).items():
        if name in result and str(result[name]) != value:
            raise LlmopsError(
                "%s=%s disagrees with %s derived from the NCCL env; drop it from llmops_nccl_env (it is derived)"
                % (name, result[name], value)
            )
        result[name] = value
    return result


def as_pod_env(env):
    """[{name, value}] sorted by name, the shape a container's env list takes."""
    return [{"name": k, "value": v} for k, v in sorted(env.items())]


def exact_hca_list(value):
    """NCCL_IB_HCA with the exact-match '=' prefix (a bare 'mlx5_1' also selects mlx5_10..mlx5_17).

    An exclusion list ('^...') is left as written: '^' and '=' combine as '^=', which the author chose.
    """
    value = str(value).strip()
    if not value or value.startswith(("=", "^")):
        return value
    return "=" + value


def _ifname(value):
    return str(value).lstrip("=")


def network_env(env, network_mode, host_ifname="", pod_ifname=POD_IFNAME, variables=None):
    """The pod's NCCL/GLOO env for its network mode: the socket interface comes from the mode, not a guess.

    - pod network: the pod sees one interface, ``pod_ifname`` (eth0); the host's NIC name does not exist there.
    - host network: the pod shares the host's interfaces; ``host_ifname`` (rdma_check's socket_ifname or the
      inventory) must be given, since eth0 may not exist on the host or may be the wrong network.
    A socket variable already set to another interface is refused (the mismatch the env would hide until NCCL
    hangs in bootstrap). ``variables`` are the socket variables to set (default NCCL and GLOO); any other of
    SOCKET_IFNAME_VARIABLES present in ``env`` is checked the same way. NCCL_IB_HCA gets the '=' prefix.
    """
    if network_mode not in NETWORK_MODES:
        raise LlmopsError("network mode must be one of %s, got %r" % (", ".join(NETWORK_MODES), network_mode))
    if not isinstance(env, dict):
        raise LlmopsError("the NCCL env must be a dict of variable -> value, got %r" % (env,))
    result = {str(name): str(value) for name, value in env.items()}
    wanted = ("NCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME") if variables is None else tuple(variables)
    touched = [name for name in SOCKET_IFNAME_VARIABLES if name in wanted or name in result]
    if touched:
        if network_mode == "host":
            ifname = _ifname(host_ifname or "")
            if not ifname:
                raise LlmopsError(
                    "host networking needs the host's interface name for %s: run the GPU node checks (rdma_check "
                    "measures it) or set inference_server_host_ifname; eth0 is the pod network's name"
                    % ", ".join(touched)
                )
        else:
            ifname = _ifname(pod_ifname or POD_IFNAME)
        for name in touched:
            if name in result and _ifname(result[name]) != ifname:
                raise LlmopsError(
                    "%s=%s does not match the %s network, whose interface is %s: drop it from llmops_nccl_env "
                    "(the network mode sets it) or change the network mode" % (name, result[name], network_mode, ifname)
                )
            result[name] = ifname
    if result.get("NCCL_IB_HCA"):
        result["NCCL_IB_HCA"] = exact_hca_list(result["NCCL_IB_HCA"])
    return result
