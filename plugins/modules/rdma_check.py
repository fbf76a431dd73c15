#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: rdma_check
short_description: RDMA ports, RoCE v2 GID index, GPUDirect RDMA and the NCCL env the serving pods need
version_added: 0.1.0
description:
  - Walks C(/sys/class/infiniband) (the root is settable) for every RDMA device and port; state, physical
    state, rate, link layer, the GID table with types, the RoCE v2 IPv4 GID index and the netdev.
  - Cross-checks with C(ibv_devinfo) and C(ibstat) when present, or always with O(use_tools=required).
  - Detects GPUDirect RDMA; nvidia-peermem (or nv_peer_mem) loaded, or DMA-BUF possible (kernel >= 5.12 and
    NVIDIA's open kernel module).
  - Returns RV(nccl_env), computed by the collection's one C(nccl_env) function from these facts;
    keep the whole return as C(llmops_rdma).
  - Fails when a port is down, slower than O(min_rate_gbps), a RoCE port has no RoCE v2 IPv4 GID, the GID
    indexes of this host's ports differ, or this host's index differs from the ones in O(hosts_gid_indexes).
  - A host without RDMA devices is reported cleanly (C(rdma_present=false), C(NCCL_IB_DISABLE=1)); it only
    fails with O(require_rdma=true).
options:
  sysfs_root:
    description: Root of sysfs; C(class/infiniband) and C(module) are read below it.
    type: path
    default: /sys
  proc_root:
    description: Root of C(proc/net/route) (default-route interface) and C(proc/driver/nvidia/version).
    type: path
    default: /
  require_rdma:
    description: Fail when the host has no RDMA device.
    type: bool
    default: false
  expected_devices:
    description: RDMA device names (C(mlx5_0)...) that must be present; only these are judged when given.
    type: list
    elements: str
  min_rate_gbps:
    description: Slowest acceptable port rate in Gb/s (C(200) for HDR, C(400) for NDR).
    type: float
  hosts_gid_indexes:
    description:
      - RoCE v2 IPv4 GID index of the other hosts of the group, host name to index, usually collected from
        an earlier rdma_check run on each host (C(hostvars[h].llmops_rdma.gid_index)). This host's own index is
        compared with them; the check fails when they differ, because the pods share one C(NCCL_IB_GID_INDEX).
    type: dict
  host_name:
    description: Name of this host in the comparison; defaults to the host's name.
    type: str
  nccl_env_overrides:
    description: Variables to set (value) or drop (null) in RV(nccl_env), e.g. C(NCCL_SOCKET_IFNAME=eth0) for pods.
    type: dict
  use_tools:
    description:
      - C(auto) runs C(ibv_devinfo)/C(ibstat) when found and warns when one exits non-zero; C(required) fails when
        one is missing or fails; C(never) reads sysfs only.
    type: str
    choices: [auto, required, never]
    default: auto
  fail_on_problems:
    description: Fail when RV(problems) is not empty.
    type: bool
    default: true
author:
  - llmops.inference maintainers (@llmops)
"""

EXAMPLES = r"""
- name: RDMA facts of every GPU node, 200G ports expected
  llmops.inference.rdma_check:
    min_rate_gbps: 200
  register: llmops_rdma_raw

- name: Keep them for the serving roles
  ansible.builtin.set_fact:
    llmops_rdma: "{{ llmops_rdma_raw }}"

- name: Second pass; every host of the group must use the same GID index
  llmops.inference.rdma_check:
    host_name: "{{ inventory_hostname }}"
    hosts_gid_indexes: >-
      {{ dict(groups['gpu_nodes']
              | zip(groups['gpu_nodes'] | map('extract', hostvars, ['llmops_rdma', 'gid_index']))) }}
"""

RETURN = r"""
rdma_present:
  description: Whether any RDMA device exists.
  type: bool
  returned: always
devices:
  description: RDMA devices (name, hca_type, fw_ver, node_guid, board_id, netdevs, ports with state, phys_state,
    rate, rate_gbps, link_layer, gids, roce_v2_ipv4_gid_index, netdev).
  type: list
  elements: dict
  returned: success
active_hcas:
  description: Active ports as C(device:port).
  type: list
  elements: str
  returned: success
gid_index:
  description: RoCE v2 IPv4 GID index shared by this host's active RoCE ports (null on InfiniBand or without RDMA).
  type: int
  returned: success
socket_ifname:
  description: Interface of the IPv4 default route (bootstrap/socket interface on the host).
  type: str
  returned: success
peermem_loaded:
  description: Whether nvidia-peermem or nv_peer_mem is loaded.
  type: bool
  returned: success
dmabuf_possible:
  description: Whether GPUDirect RDMA through DMA-BUF is possible.
  type: bool
  returned: success
gpudirect_rdma:
  description: peermem_loaded or dmabuf_possible.
  type: bool
  returned: success
nccl_env:
  description: NCCL/GLOO variables for the serving pods (NCCL_IB_HCA, NCCL_IB_GID_INDEX, NCCL_IB_DISABLE,
    NCCL_NET_GDR_LEVEL, NCCL_SOCKET_IFNAME, GLOO_SOCKET_IFNAME).
  type: dict
  returned: success
tools:
  description: Parsed C(ibv_devinfo) and C(ibstat) output, for the tools that ran.
  type: dict
  returned: success
problems:
  description: Reasons the RDMA setup is not fit; empty when healthy.
  type: list
  elements: str
  returned: always
"""

import os
import platform
import socket

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.llmops.inference.plugins.module_utils import rdma
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError, refuse_nul
from ansible_collections.llmops.inference.plugins.module_utils.nccl_env import nccl_env_from_rdma

_TOOLS = (("ibv_devinfo", ["-v"], rdma.parse_ibv_devinfo), ("ibstat", [], rdma.parse_ibstat))


def _read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None


def run_tools(module, mode):
    parsed = {}
    if mode == "never":
        return parsed
    for name, args, parser in _TOOLS:
        path = module.get_bin_path(name)
        if not path:
            if mode == "required":
                raise LlmopsError("%s not found; install rdma-core/infiniband-diags or set use_tools=auto" % name)
            continue
        rc, out, err = module.run_command([path] + args)
        if rc != 0:
            message = "%s exited with %d: %s" % (name, rc, (err or out).strip()[:300])
            if mode == "required":
                raise LlmopsError(message)
            module.warn(message)
            continue
        parsed[name] = parser(out)
    return parsed


def gather(module):
    params = module.params
    devices = rdma.read_sysfs(params["sysfs_root"])
    if params["expected_devices"]:
        # only the devices the serving pods will use are judged and put into NCCL_IB_HCA
        devices = [d for d in devices if d["name"] in params["expected_devices"]]
    lsmod = module.get_bin_path("lsmod")
    lsmod_text = module.run_command([lsmod])[1] if lsmod else None
    peermem = rdma.peermem_loaded(params["sysfs_root"], lsmod_text)
    dmabuf = rdma.dmabuf_possible(
        platform.release(), _read(os.path.join(params["proc_root"], "proc/driver/nvidia/version"))
    )
    tools = run_tools(module, params["use_tools"]) if devices else {}
    problems = rdma.judge_ports(devices, params["min_rate_gbps"], params["expected_devices"])
    gid_index = None
    try:
        gid_index = rdma.host_gid_index(devices)
    except LlmopsError as exc:
        problems.append(exc.message)
    if params["hosts_gid_indexes"]:
        compared = dict(params["hosts_gid_indexes"])
        compared[params["host_name"] or socket.gethostname()] = gid_index
        problems.extend(rdma.compare_gid_indexes(compared))
    if not devices and params["require_rdma"]:
        problems.append("no RDMA devices under %s/class/infiniband, and require_rdma is set" % params["sysfs_root"])
    result = {
        "rdma_present": bool(devices),
        "devices": devices,
        "active_hcas": ["%s:%d" % (dev["name"], port["port"]) for dev, port in rdma.active_ports(devices)],
        "gid_index": gid_index,
        "socket_ifname": rdma.default_route_ifname(_read(os.path.join(params["proc_root"], "proc/net/route"))),
        "peermem_loaded": peermem,
        "dmabuf_possible": dmabuf,
        "gpudirect_rdma": peermem or dmabuf,
        "tools": tools,
        "problems": problems,
    }
    overrides = dict(params["nccl_env_overrides"] or {})
    if gid_index is None and any(p["link_layer"] == "Ethernet" for _d, p in rdma.active_ports(devices)):
        # the problem is already reported; keep the env computable so the report is complete
        overrides.setdefault("NCCL_IB_GID_INDEX", None)
        result["nccl_env"] = nccl_env_from_rdma(dict(result, devices=[]), overrides)
    else:
        result["nccl_env"] = nccl_env_from_rdma(result, overrides)
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            sysfs_root=dict(type="path", default="/sys"),
            proc_root=dict(type="path", default="/"),
            require_rdma=dict(type="bool", default=False),
            expected_devices=dict(type="list", elements="str"),
            min_rate_gbps=dict(type="float"),
            hosts_gid_indexes=dict(type="dict"),
            host_name=dict(type="str"),
            nccl_env_overrides=dict(type="dict"),
            use_tools=dict(type="str", default="auto", choices=["auto", "required", "never"]),
            fail_on_problems=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    params = module.params
    if params["min_rate_gbps"] is not None and params["min_rate_gbps"] <= 0:
        module.fail_json(msg="min_rate_gbps must be positive, got %s" % params["min_rate_gbps"], problems=[])
    for host, index in (params["hosts_gid_indexes"] or {}).items():
        if index is not None and not str(index).isdigit():
            module.fail_json(
                msg="hosts_gid_indexes[%s] must be a GID index (integer) or null, got %r" % (host, index), problems=[]
            )
    try:
        refuse_nul(module.params)
        result = gather(module)
    except LlmopsError as exc:
        module.fail_json(msg=exc.message, problems=[exc.message])
    if result["problems"] and params["fail_on_problems"]:
        module.fail_json(msg="RDMA not ready: " + "; ".join(result["problems"]), changed=False, **result)
    if not result["rdma_present"]:
        result["msg"] = (
            "no RDMA devices under %s/class/infiniband: NCCL uses sockets between hosts "
            "(NCCL_IB_DISABLE=1)" % params["sysfs_root"].rstrip("/")
        )
    else:
        result["msg"] = "%d active RDMA ports: %s" % (len(result["active_hcas"]), ", ".join(result["active_hcas"]))
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
