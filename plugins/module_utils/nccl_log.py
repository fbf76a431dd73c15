# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Transport truth from NCCL_DEBUG=INFO output: which transport every channel used, and a judgement.

NCCL reports a slow fabric as a success: a run whose inter-node channels fell back to TCP sockets
completes, only ten to a hundred times slower. The channel lines say what really carried the data:

    host:pid:tid [dev] NCCL INFO Channel 00/0 : 0[0] -> 1[1] via P2P/CUMEM            (NVLink / PCIe P2P)
    host:pid:tid [dev] NCCL INFO Channel 00 : 0[0] -> 1[1] via SHM/direct/direct      (host shared memory)
    host:pid:tid [dev] NCCL INFO Channel 00/0 : 1[1] -> 0[0] [receive] via NET/Socket/0 (TCP)
    host:pid:tid [dev] NCCL INFO Channel 01 : 2[c7000] -> 0[87000] [receive] via NET/IB/5/GDRDMA

`NET/IB/<n>` names the n-th device of that host's `NET/IB : Using [0]mlx5_0:1/IB [1]mlx5_1:1/RoCE ...`
line, whose suffix gives the link layer (IB or RoCE); `/GDRDMA` means GPUDirect RDMA. Ranks map to
hosts through `ncclCommInitRank... rank R nranks N ...` lines, so a channel is inter-node when its
two ranks sit on different hosts. One parser serves nccl_check's sweeps, a log a user already has
(`nccl_check nccl_log=...`) and the serving pre-flight.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

EXPECTED_TRANSPORTS = ("nvlink", "shm", "ib", "roce", "socket")
# Intra-node expectations judge channels inside a host, network expectations the channels between hosts.
INTRA_NODE = ("nvlink", "shm")

_PREFIX = re.compile(
    r"^(?P<host>[^\s:]*):(?P<pid>\d+):(?P<tid>\d+)\s+\[(?P<dev>[^\]]*)\]\s+NCCL\s+(?P<level>INFO|WARN)\s"
)
_CHANNEL = re.compile(
    r"Channel\s+(?P<channel>\d+)(?:/\d+)?\s*:\s*(?P<src>\d+)\[[^\]]*\]\s*->\s*(?P<dst>\d+)\[[^\]]*\]"
    r"(?:\s*\[(?P<direction>\w+)\])?\s+via\s+(?P<transport>\S+)"
)
_INIT_RANK = re.compile(
    r"ncclCommInitRank\w*\s+comm\s+(?P<comm>0x[0-9a-f]+)\s+rank\s+(?P<rank>\d+)\s+nranks\s+(?P<nranks>\d+)"
)
_NET_IB_USING = re.compile(r"NET/IB\s*:\s*Using\s+(?P<devices>(?:\[\d+\]\S+\s*)+)")
_NET_DEVICE = re.compile(r"\[(?P<index>\d+)\](?P<name>[^:\s]+):(?P<port>\d+)/(?P<link>\w+)")
_GID_INDEX = re.compile(r"NCCL_IB_GID_INDEX set by environment to (?P<index>-?\d+)")
_NETWORK = re.compile(r"Using network (?P<net>\S+)")
_VERSION = re.compile(r"NCCL version (?P<version>[\d.]+)")
_GDR_RING = re.compile(r"Connected all rings.*\bGDR (?P<gdr>[01])")


def classify(transport, net_devices=None):
    """One word for a channel's transport: nvlink (P2P), shm, ib, roce, socket, or the raw name.

    P2P channels are NVLink on NVLink-connected GPUs and PCIe P2P otherwise; the channel line cannot
    tell them apart, nvidia-smi's topology can (nccl_check passes it as link_type).
    """
    parts = transport.split("/")
    head = parts[0]
    if head == "P2P":
        return "nvlink"
    if head == "SHM":
        return "shm"
    if head == "NET" and len(parts) > 1:
        if parts[1] == "Socket":
            return "socket"
        if parts[1].startswith("IB"):
            device = _device_index(parts)
            link = (net_devices or {}).get(device, {}).get("link") if device is not None else None
            return "roce" if link == "RoCE" else "ib"
        return "net:" + parts[1]
    return head.lower()


def _device_index(parts):
    if len(parts) > 2 and parts[2].isdigit():
        return int(parts[2])
    return None


def parse_nccl_log(text):
    """Everything the judgement needs from NCCL_DEBUG=INFO output of one or more ranks (any order).

    Returns nccl_version, network (the plugin NCCL chose), ranks (rank -> host), hosts, nranks,
    net_devices (per host: index -> name, port, link), gid_index, gdr (True/False/None), channels (each
    with channel, src, dst, direction, transport, kind, inter_node, net_device, gdr) and summary
    (transport -> count of distinct channel connections).
    """
    if not isinstance(text, str):
        raise LlmopsError("an NCCL log must be text, got %s" % type(text).__name__)
    version = network = gid_index = nranks = None
    gdr_ring = None
    ranks = {}
    net_devices = {}
    raw_channels = []
    for line in text.splitlines():
        if "NCCL" not in line:
            continue
        prefix = _PREFIX.match(line)
        host = prefix.group("host") if prefix else ""
        match = _VERSION.search(line)
        if match and version is None:
            version = match.group("version")
        match = _NETWORK.search(line)
        if match:
            network = match.group("net")
        match = _GID_INDEX.search(line)
        if match:
            gid_index = int(match.group("index"))
        match = _GDR_RING.search(line)
        if match:
            gdr_ring = bool(int(match.group("gdr"))) or bool(gdr_ring)
        match = _INIT_RANK.search(line)
        if match:
            ranks[int(match.group("rank"))] = host
            nranks = int(match.group("nranks"))
            continue
        match = _NET_IB_USING.search(line)
        if match:
            net_devices[host] = {
                int(dev.group("index")): {
                    "name": dev.group("name"),
                    "port": int(dev.group("port")),
                    "link": dev.group("link"),
                }
                for dev in _NET_DEVICE.finditer(match.group("devices"))
            }
            continue
        match = _CHANNEL.search(line)
        if match:
            raw_channels.append((host, match))
    channels = []
    seen = set()
    for host, match in raw_channels:
        src, dst = int(match.group("src")), int(match.group("dst"))
        transport = match.group("transport")
        parts = transport.split("/")
        kind = classify(transport, net_devices.get(host))
        device = _device_index(parts) if parts[0] == "NET" else None
        # Both ends print a connection (send and receive): count each (channel, src, dst, transport) once.
        key = (int(match.group("channel")), src, dst, kind)
        if key in seen:
            continue
        seen.add(key)
        src_host, dst_host = ranks.get(src), ranks.get(dst)
        inter = None if src_host is None or dst_host is None else src_host != dst_host
        if inter is None and kind in ("ib", "roce", "socket"):
            inter = True  # NET channels only connect ranks of different hosts unless forced by NCCL_P2P/SHM off
        device_info = (net_devices.get(host) or {}).get(device) if device is not None else None
        channels.append(
            {
                "channel": int(match.group("channel")),
                "src": src,
                "dst": dst,
                "direction": match.group("direction"),
                "transport": transport,
                "kind": kind,
                "inter_node": inter,
                "net_device": device_info["name"] if device_info else device,
                "gdr": parts[-1] == "GDRDMA" if parts[0] == "NET" else None,
            }
        )
    summary = {}
    for channel in channels:
        summary[channel["kind"]] = summary.get(channel["kind"], 0) + 1
    net = [c for c in channels if c["kind"] in ("ib", "roce")]
    gdr = any(c["gdr"] for c in net) if net else gdr_ring
    return {
        "nccl_version": version,
        "network": network,
        "ranks": ranks,
        "hosts": sorted(set(ranks.values()) - {""}),
        "nranks": nranks,
        "net_devices": {host: {str(i): d for i, d in devs.items()} for host, devs in net_devices.items()},
        "gid_index": gid_index,
        "gdr": gdr,
        "hcas": sorted({c["net_device"] for c in net if isinstance(c["net_device"], str)}),
        "channels": channels,
        "summary": summary,
    }


def expected_from_rdma(rdma_facts):
    """(expected inter-node transport, expected GID index) from rdma_check's facts: roce when the
    active ports are Ethernet, ib when InfiniBand, socket when no port is active."""
    if not isinstance(rdma_facts, dict):
        raise LlmopsError("rdma_facts must be the dict rdma_check returns, got %s" % type(rdma_facts).__name__)
    layers = set()
    gid_indexes = set()
    for device in rdma_facts.get("devices") or []:
        for port in device.get("ports") or []:
            if port.get("state") != "ACTIVE":
                continue
            layers.add(port.get("link_layer"))
            if port.get("link_layer") == "Ethernet" and port.get("roce_v2_ipv4_gid_index") is not None:
                gid_indexes.add(port["roce_v2_ipv4_gid_index"])
    if not layers:
        return "socket", None
    if layers == {"Ethernet"}:
        return "roce", (gid_indexes.pop() if len(gid_indexes) == 1 else None)
    if layers == {"InfiniBand"}:
        return "ib", None
    raise LlmopsError(
        "the RDMA facts mix link layers (%s): give expected_transport" % ", ".join(sorted(map(str, layers)))
    )


def _pairs(channels, limit=6):
    pairs = sorted({"%d->%d" % (c["src"], c["dst"]) for c in channels})
    return ", ".join(pairs[:limit]) + (" and %d more" % (len(pairs) - limit) if len(pairs) > limit else "")


_WORDS = {
    "nvlink": "P2P (NVLink)",
    "shm": "SHM (host shared memory)",
    "ib": "NET/IB (InfiniBand)",
    "roce": "NET/IB over RoCE",
    "socket": "NET/Socket (TCP)",
}


def transport_words(expected):
    """How a message names an expected transport ('ib' -> 'NET/IB (InfiniBand)')."""
    return _WORDS.get(expected, expected)


def judge_transport(parsed, expected, expected_gid_index=None, expect_gdr=None):
    """(passed, reasons) for a parsed log against the expected transport.

    nvlink / shm judge the channels inside a host; ib / roce / socket judge the channels between hosts,
    so a run whose inter-node channels went over NET/Socket fails with that sentence whatever its
    bandwidth. A log without any channel of the judged scope fails too: it cannot prove the transport.
    """
    if expected not in EXPECTED_TRANSPORTS:
        raise LlmopsError("expected_transport must be one of %s, got %r" % (", ".join(EXPECTED_TRANSPORTS), expected))
    channels = parsed.get("channels") or []
    reasons = []
    if not channels:
        return False, ["the log has no NCCL channel lines (run with NCCL_DEBUG=INFO, every rank's output)"]
    if expected in INTRA_NODE:
        scope = [c for c in channels if c["inter_node"] is not True]
        where = "intra-node"
    else:
        scope = [c for c in channels if c["inter_node"] is True]
        where = "inter-node"
    if not scope:
        return False, ["the log has no %s channels, so %s cannot be confirmed" % (where, _WORDS[expected])]
    wrong = [c for c in scope if c["kind"] != expected]
    if wrong:
        kinds = sorted({c["kind"] for c in wrong})
        reasons.append(
            "%d of %d %s channel connections run via %s, not %s (%s)"
            % (
                len(wrong),
                len(scope),
                where,
                " and ".join(_WORDS.get(k, k) for k in kinds),
                _WORDS[expected],
                _pairs(wrong),
            )
        )
    if expected in ("ib", "roce"):
        gid = parsed.get("gid_index")
        if expected_gid_index is not None and gid is not None and gid != expected_gid_index:
            reasons.append(
                "NCCL used GID index %d, the RDMA facts give %d (NCCL_IB_GID_INDEX)" % (gid, expected_gid_index)
            )
        if expect_gdr and not any(c["gdr"] for c in scope):
            reasons.append("GPUDirect RDMA was not used (no GDRDMA channel): check nvidia-peermem or DMA-BUF")
    return not reasons, reasons


def transport_report(parsed):
    """The part of a parsed log a module returns: summary per transport and the facts seen."""
    return {
        "summary": parsed["summary"],
        "inter_node": sorted({c["kind"] for c in parsed["channels"] if c["inter_node"] is True}),
        "intra_node": sorted({c["kind"] for c in parsed["channels"] if c["inter_node"] is not True}),
        "channels": parsed["channels"],
        "hcas": parsed["hcas"],
        "gid_index": parsed["gid_index"],
        "gdr": parsed["gdr"],
        "hosts": parsed["hosts"],
        "nranks": parsed["nranks"],
        "nccl_version": parsed["nccl_version"],
        "network": parsed["network"],
    }
