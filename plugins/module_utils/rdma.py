# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""RDMA facts from sysfs (/sys/class/infiniband) and ibv_devinfo/ibstat, and the judgement on them.

The sysfs root is a parameter so tests walk a tree built in a temporary folder. Layout (kernel
Documentation/ABI/stable/sysfs-class-infiniband):
  <dev>/ports/<n>/{state,phys_state,rate,link_layer}
  <dev>/ports/<n>/gids/<i>                 GID in 8 groups of 4 hex digits
  <dev>/ports/<n>/gid_attrs/types/<i>      "IB/RoCE v1" | "RoCE v2" (reading an unused entry fails EINVAL)
  <dev>/ports/<n>/gid_attrs/ndevs/<i>      netdev of a RoCE GID
  <dev>/device/net/<ifname>                netdev(s) of the PCI function
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

_ZERO_GID = "0000:0000:0000:0000:0000:0000:0000:0000"
_RATE_RE = re.compile(r"^\s*(?P<gbps>[\d.]+)\s*Gb/sec")


def _read(path):
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return None


def _listdir(path):
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def _state(raw):
    """'4: ACTIVE' -> 'ACTIVE'; '5: LinkUp' -> 'LinkUp'."""
    if raw is None:
        return None
    return raw.split(":", 1)[1].strip() if ":" in raw else raw.strip()


def parse_rate(raw):
    """'200 Gb/sec (4X HDR)' -> 200.0 (None when unreadable)."""
    match = _RATE_RE.match(raw or "")
    return float(match.group("gbps")) if match else None


def gid_ipv4(gid):
    """IPv4 address of an IPv4-mapped GID (::ffff:a.b.c.d), else None."""
    groups = gid.split(":")
    if len(groups) != 8 or any(g != "0000" for g in groups[:5]) or groups[5].lower() != "ffff":
        return None
    raw = groups[6] + groups[7]
    return ".".join(str(int(raw[i : i + 2], 16)) for i in range(0, 8, 2))


def _gids(port_path):
    gids = []
    for name in _listdir(os.path.join(port_path, "gids")):
        if not name.isdigit():
            continue
        gid = _read(os.path.join(port_path, "gids", name))
        if not gid or gid == _ZERO_GID:
            continue
        index = int(name)
        gid_type = _read(os.path.join(port_path, "gid_attrs", "types", name))
        gids.append(
            {
                "index": index,
                "gid": gid,
                "type": gid_type,
                "ndev": _read(os.path.join(port_path, "gid_attrs", "ndevs", name)),
                "ipv4": gid_ipv4(gid),
            }
        )
    return sorted(gids, key=lambda g: g["index"])


def roce_v2_ipv4_index(gids):
    """Lowest index of a RoCE v2 GID carrying an IPv4 address: what NCCL_IB_GID_INDEX must name."""
    for gid in gids:
        if gid["type"] == "RoCE v2" and gid["ipv4"]:
            return gid["index"]
    return None


def read_sysfs(sysfs_root="/sys"):
    """All RDMA devices and ports under <root>/class/infiniband (empty list when there are none)."""
    base = os.path.join(sysfs_root, "class", "infiniband")
    devices = []
    for dev in _listdir(base):
        dev_path = os.path.join(base, dev)
        netdevs = _listdir(os.path.join(dev_path, "device", "net"))
        ports = []
        for port in _listdir(os.path.join(dev_path, "ports")):
            if not port.isdigit():
                continue
            port_path = os.path.join(dev_path, "ports", port)
            gids = _gids(port_path)
            link_layer = _read(os.path.join(port_path, "link_layer"))
            ndevs = sorted({g["ndev"] for g in gids if g["ndev"]})
            ports.append(
                {
                    "port": int(port),
                    "state": _state(_read(os.path.join(port_path, "state"))),
                    "phys_state": _state(_read(os.path.join(port_path, "phys_state"))),
                    "rate": _read(os.path.join(port_path, "rate")),
                    "rate_gbps": parse_rate(_read(os.path.join(port_path, "rate"))),
                    "link_layer": link_layer,
                    "gids": gids,
                    "roce_v2_ipv4_gid_index": roce_v2_ipv4_index(gids) if link_layer == "Ethernet" else None,
                    "netdev": ndevs[0] if ndevs else (netdevs[0] if len(netdevs) == 1 else None),
                }
            )
        devices.append(
            {
                "name": dev,
                "hca_type": _read(os.path.join(dev_path, "hca_type")),
                "fw_ver": _read(os.path.join(dev_path, "fw_ver")),
                "node_guid": _read(os.path.join(dev_path, "node_guid")),
                "board_id": _read(os.path.join(dev_path, "board_id")),
                "netdevs": netdevs,
                "ports": ports,
            }
        )
    return devices


def parse_ibstat(text):
    """``ibstat``: {ca: {ports: {n: {state, physical_state, rate_gbps, link_layer}}}}."""
    cas = {}
    ca = None
    port = None
    for line in text.splitlines():
        head = re.match(r"^CA '(?P<ca>[^']+)'", line)
        if head:
            ca = cas.setdefault(head.group("ca"), {"ports": {}})
            port = None
            continue
        port_head = re.match(r"^\s*Port (\d+):\s*$", line)
        if port_head and ca is not None:
            port = ca["ports"].setdefault(int(port_head.group(1)), {})
            continue
        if ":" not in line or ca is None:
            continue
        key, _sep, value = line.strip().partition(":")
        key = key.strip().lower().replace(" ", "_")
        value = value.strip()
        if port is None:
            ca[key] = value
        elif key == "rate":
            port["rate_gbps"] = float(value) if re.match(r"^[\d.]+$", value) else None
        else:
            port[key] = value
    if text.strip() and not cas:
        raise LlmopsError("Cannot read ibstat output: %r" % text[:300])
    return cas


def parse_ibv_devinfo(text):
    """``ibv_devinfo``: {hca_id: {fw_ver, ports: {n: {state, link_layer, active_mtu}}}}."""
    devices = {}
    dev = None
    port = None
    for line in text.splitlines():
        head = re.match(r"^hca_id:\s*(\S+)", line)
        if head:
            dev = devices.setdefault(head.group(1), {"ports": {}})
            port = None
            continue
        port_head = re.match(r"^\s*port:\s*(\d+)", line)
        if port_head and dev is not None:
            port = dev["ports"].setdefault(int(port_head.group(1)), {})
            continue
        if ":" not in line or dev is None:
            continue
        key, _sep, value = line.strip().partition(":")
        value = value.strip()
        target = port if port is not None else dev
        if key.strip() == "state":
            value = re.sub(r"\s*\(\d+\)$", "", value)
        target[key.strip()] = value
    if text.strip() and not devices and "No IB devices found" not in text:
        raise LlmopsError("Cannot read ibv_devinfo output: %r" % text[:300])
    return devices


def peermem_loaded(sysfs_root="/sys", lsmod_text=None):
    """nvidia-peermem (or the older nv_peer_mem) loaded: GPUDirect RDMA through peer memory."""
    for name in ("nvidia_peermem", "nv_peer_mem"):
        if os.path.isdir(os.path.join(sysfs_root, "module", name)):
            return True
    if lsmod_text:
        return any(
            line.split()[0] in ("nvidia_peermem", "nv_peer_mem") for line in lsmod_text.splitlines() if line.strip()
        )
    return False


def dmabuf_possible(kernel_release, nvidia_version_text):
    """GPUDirect RDMA through DMA-BUF needs kernel >= 5.12 and NVIDIA's open kernel module."""
    match = re.match(r"^(\d+)\.(\d+)", kernel_release or "")
    if not match or (int(match.group(1)), int(match.group(2))) < (5, 12):
        return False
    return "Open Kernel Module" in (nvidia_version_text or "")


def default_route_ifname(route_text):
    """Interface of the IPv4 default route from /proc/net/route."""
    for line in (route_text or "").splitlines()[1:]:
        fields = line.split()
        if len(fields) > 2 and fields[1] == "00000000":
            return fields[0]
    return None


def active_ports(devices):
    return [(dev, port) for dev in devices for port in dev["ports"] if port["state"] == "ACTIVE"]


def judge_ports(devices, min_rate_gbps=None, expected_devices=None):
    """Reasons: port down / not LinkUp, slower than min_rate_gbps, RoCE port without RoCE v2 IPv4 GID."""
    reasons = []
    for dev in devices:
        if expected_devices and dev["name"] not in expected_devices:
            continue
        for port in dev["ports"]:
            name = "%s port %d" % (dev["name"], port["port"])
            if port["state"] != "ACTIVE" or port["phys_state"] != "LinkUp":
                reasons.append("%s is down (state %s, physical state %s)" % (name, port["state"], port["phys_state"]))
                continue
            if min_rate_gbps and (port["rate_gbps"] or 0) < min_rate_gbps:
                reasons.append("%s runs at %s, slower than the expected %g Gb/s" % (name, port["rate"], min_rate_gbps))
            if port["link_layer"] == "Ethernet" and port["roce_v2_ipv4_gid_index"] is None:
                reasons.append(
                    "%s (RoCE) has no RoCE v2 GID with an IPv4 address: no IP on %s?"
                    % (name, port["netdev"] or "its netdev")
                )
    for name in expected_devices or []:
        if name not in [d["name"] for d in devices]:
            reasons.append("RDMA device %s not found" % name)
    return reasons


def host_gid_index(devices):
    """The one RoCE v2 IPv4 GID index of this host's active RoCE ports; LlmopsError when they differ."""
    indexes = sorted(
        {
            port["roce_v2_ipv4_gid_index"]
            for _dev, port in active_ports(devices)
            if port["link_layer"] == "Ethernet" and port["roce_v2_ipv4_gid_index"] is not None
        }
    )
    if len(indexes) > 1:
        detail = ", ".join(
            "%s:%d=%s" % (dev["name"], port["port"], port["roce_v2_ipv4_gid_index"])
            for dev, port in active_ports(devices)
            if port["link_layer"] == "Ethernet"
        )
        raise LlmopsError(
            "RoCE v2 IPv4 GID index differs between this host's ports (%s); NCCL_IB_GID_INDEX "
            "is one value per process: give every RoCE netdev its IPv4 address the same way" % detail
        )
    return indexes[0] if indexes else None


def compare_gid_indexes(hosts_gid_indexes):
    """Reasons when the hosts of one group disagree on the GID index (NCCL needs one value everywhere)."""
    known = {host: idx for host, idx in (hosts_gid_indexes or {}).items() if idx is not None}
    values = sorted({int(v) for v in known.values()})
    if len(values) <= 1:
        return []
    by_value = {}
    for host, idx in sorted(known.items()):
        by_value.setdefault(int(idx), []).append(host)
    detail = "; ".join("index %d on %s" % (v, ", ".join(h)) for v, h in sorted(by_value.items()))
    return [
        "RoCE v2 IPv4 GID index differs between hosts of the group (%s): the pods share one "
        "NCCL_IB_GID_INDEX, so fix the GID tables (same IP setup on every host) first" % detail
    ]


def _host_summary(facts):
    """What must be equal on every node of one engine group: the pods share one NCCL/NVSHMEM env."""
    ports = {}
    for dev in facts.get("devices") or []:
        for port in dev.get("ports") or []:
            if port.get("state") != "ACTIVE":
                continue
            ports["%s:%d" % (dev["name"], port["port"])] = (port.get("link_layer"), port.get("rate_gbps"))
    mtus = {}
    for hca, info in ((facts.get("tools") or {}).get("ibv_devinfo") or {}).items():
        for number, port in (info.get("ports") or {}).items():
            if port.get("active_mtu"):
                mtus["%s:%s" % (hca, number)] = port["active_mtu"]
    return {
        "hcas": sorted(ports),
        "link_layer": {hca: layer for hca, (layer, _rate) in ports.items()},
        "rate_gbps": {hca: rate for hca, (_layer, rate) in ports.items()},
        "mtu": mtus,
        "gid_index": facts.get("gid_index"),
        "gpudirect_rdma": bool(facts.get("gpudirect_rdma")),
    }


def _differences(by_host, describe):
    """Group hosts by a described value; one string per distinct value when they differ, else None."""
    groups = {}
    for host, value in sorted(by_host.items()):
        groups.setdefault(describe(value), []).append(host)
    if len(groups) <= 1:
        return None
    return "; ".join("%s on %s" % (value, ", ".join(hosts)) for value, hosts in sorted(groups.items()))


def compare_fleet(facts_by_host):
    """Reasons why the GPU nodes of one group cannot share one NCCL environment (empty when they can).

    facts_by_host: host -> rdma_check's return. Compared: the active HCA ports (NCCL_IB_HCA is one list for
    every pod), their link layer and rate, the active MTU (from ibv_devinfo when it ran), the RoCE v2 GID index
    (NCCL_IB_GID_INDEX and NVSHMEM_IB_GID_INDEX are one value) and GPUDirect RDMA (peermem or DMA-BUF).
    """
    if not isinstance(facts_by_host, dict) or not facts_by_host:
        raise LlmopsError("compare_fleet needs a dict host -> rdma_check facts with at least one host")
    for host, facts in facts_by_host.items():
        if not isinstance(facts, dict):
            raise LlmopsError("the RDMA facts of %s are not rdma_check's dict (got %s)" % (host, type(facts).__name__))
    summaries = {host: _host_summary(facts) for host, facts in facts_by_host.items()}
    # Layers and rates are compared on the ports every node has, so a missing port is reported once.
    common = set.intersection(*(set(s["hcas"]) for s in summaries.values()))

    def per_port(key, fmt):
        return lambda s: ",".join(fmt % (hca, s[key][hca]) for hca in sorted(common)) or "none"

    checks = (
        ("active RDMA ports differ", lambda s: ",".join(s["hcas"]) or "none"),
        ("link layers differ", per_port("link_layer", "%s=%s")),
        ("port rates differ", per_port("rate_gbps", "%s=%sGb/s")),
        ("active MTUs differ", lambda s: ",".join("%s=%s" % kv for kv in sorted(s["mtu"].items())) or "unknown"),
        ("RoCE v2 GID index differs", lambda s: "index %s" % s["gid_index"]),
        ("GPUDirect RDMA differs", lambda s: "peermem/DMA-BUF %s" % ("yes" if s["gpudirect_rdma"] else "no")),
    )
    reasons = []
    for label, describe in checks:
        if label == "active MTUs differ" and not any(s["mtu"] for s in summaries.values()):
            continue  # ibv_devinfo did not run anywhere: nothing to compare
        detail = _differences(summaries, describe)
        if detail:
            reasons.append("%s between the GPU nodes (%s)" % (label, detail))
    return reasons
