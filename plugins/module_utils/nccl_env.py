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
)


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
    - NCCL_SOCKET_IFNAME / GLOO_SOCKET_IFNAME: `socket_ifname` of the facts (the default-route
      interface); pods on the pod network usually need "eth0": pass it in overrides.
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


def as_pod_env(env):
    """[{name, value}] sorted by name, the shape a container's env list takes."""
    return [{"name": k, "value": v} for k, v in sorted(env.items())]
