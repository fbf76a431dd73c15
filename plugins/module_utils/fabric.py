# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fabric shape: does every GPU NIC reach every NIC of the other nodes, or only its own rail?

A rail-optimized fabric connects NIC i of every node to leaf switch i. Ring and tree all-reduce only ever
talk rail to rail (NCCL pairs GPU i with GPU i across nodes), so a rail-only fabric serves TP/PP across nodes.
Expert-parallel all-to-all (DeepEP, NVSHMEM) sends from every GPU to every GPU of every node: without the
spine (or PXN forwarding over NVLink) those transfers have no path and the engine hangs at its first MoE layer.
So the shape is measured: every local NIC pings every remote NIC address, bound to that NIC.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import re
import shlex

from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

SHAPES = ("all-to-all", "rail-only", "partial", "none")
_IFNAME = re.compile(r"^[A-Za-z0-9_.:@-]{1,15}$")


def validate_peers(peers):
    """peers: host -> {ifname: IPv4 address}; returns it normalised, LlmopsError on bad input."""
    if not isinstance(peers, dict) or not peers:
        raise LlmopsError("peers must be a dict host -> {interface: IPv4 address} with at least one host")
    clean = {}
    for host, nics in peers.items():
        if not isinstance(nics, dict) or not nics:
            raise LlmopsError("peers[%s] must be a dict interface -> IPv4 address, got %r" % (host, nics))
        clean[str(host)] = {}
        for ifname, address in nics.items():
            try:
                ipaddress.IPv4Address(str(address))
            except ValueError:
                raise LlmopsError("peers[%s][%s] is not an IPv4 address: %r" % (host, ifname, address))
            clean[str(host)][str(ifname)] = str(address)
    return clean


def validate_ifnames(names):
    if not isinstance(names, list) or not names:
        raise LlmopsError("local_interfaces must be a non-empty list of interface names")
    for name in names:
        if not isinstance(name, str) or not _IFNAME.match(name):
            raise LlmopsError("%r is not a network interface name" % (name,))
    return names


def ping_command(ping, ifname, address, count, timeout):
    """ping bound to one interface (SO_BINDTODEVICE), so a reply proves this NIC's path."""
    return [ping, "-n", "-q", "-c", str(count), "-W", str(timeout), "-I", ifname, address]


def rail_of(ifname, ifnames):
    """The rail index of a NIC: its position among the node's GPU NICs, in the order given."""
    return ifnames.index(ifname) if ifname in ifnames else None


def classify(results, local_ifnames, peers):
    """Shape of the fabric from ping results.

    results: list of {local, host, remote, address, reachable}. local_ifnames: this node's GPU NICs in rail
    order; peers: host -> {ifname: address} with the remote NICs in the same rail order (dict order).
    all-to-all: every pair answers. rail-only: every same-rail pair answers and no cross-rail pair does.
    none: nothing answers. partial: anything else (a broken cable, a missing route) - the misses are listed.
    """
    if not results:
        raise LlmopsError("no reachability results to classify")
    same_rail, cross_rail = [], []
    for result in results:
        remote_order = list(peers[result["host"]])
        same = rail_of(result["local"], local_ifnames) == rail_of(result["remote"], remote_order)
        (same_rail if same else cross_rail).append(result)
    reached = [r for r in results if r["reachable"]]
    if len(reached) == len(results):
        shape = "all-to-all"
    elif not reached:
        shape = "none"
    elif all(r["reachable"] for r in same_rail) and cross_rail and not any(r["reachable"] for r in cross_rail):
        shape = "rail-only"
    else:
        shape = "partial"

    def silent(pairs):
        return [
            "%s -> %s:%s (%s)" % (r["local"], r["host"], r["remote"], r["address"]) for r in pairs if not r["reachable"]
        ]

    return {
        "shape": shape,
        "pairs": len(results),
        "reachable": len(reached),
        "same_rail_reachable": sum(1 for r in same_rail if r["reachable"]),
        "same_rail_pairs": len(same_rail),
        "cross_rail_reachable": sum(1 for r in cross_rail if r["reachable"]),
        "cross_rail_pairs": len(cross_rail),
        # same-rail misses first: those break even ring all-reduce
        "unreachable": silent(same_rail) + ([] if shape == "rail-only" else silent(cross_rail)),
        "unreachable_same_rail": silent(same_rail),
    }


def judge(shape, require):
    """Reasons when the measured shape cannot carry what the plan needs.

    require: all-to-all (EP/DeepEP plans), rail (TP/PP across nodes: same-rail pairs must answer), none.
    """
    if require not in ("all-to-all", "rail", "none"):
        raise LlmopsError("require must be all-to-all, rail or none, got %r" % (require,))
    kind = shape["shape"]
    if require == "none":
        return []
    if require == "all-to-all" and kind != "all-to-all":
        return [
            "the fabric is %s (%d of %d cross-rail NIC pairs answer): expert-parallel all-to-all (DeepEP/NVSHMEM) "
            "needs every NIC to reach every other node's NICs; use a plan without cross-node EP, or enable the "
            "spine / PXN" % (kind, shape["cross_rail_reachable"], shape["cross_rail_pairs"])
        ]
    if require == "rail" and kind not in ("all-to-all", "rail-only"):
        return [
            "the fabric is %s: %d of %d same-rail NIC pairs answer (%s)"
            % (
                kind,
                shape["same_rail_reachable"],
                shape["same_rail_pairs"],
                ", ".join(shape["unreachable_same_rail"][:6]) or "-",
            )
        ]
    return []


_ADDR = re.compile(r"^\d+:\s+(?P<ifname>\S+)\s+inet\s+(?P<address>[\d.]+)/\d+")


def parse_ip_addr(text):
    """`ip -4 -o addr show` output -> {ifname: first IPv4 address}."""
    addresses = {}
    for line in (text or "").splitlines():
        match = _ADDR.match(line.strip())
        if match:
            addresses.setdefault(match.group("ifname").split("@")[0], match.group("address"))
    return addresses


def parallel_ping_script(commands):
    """One POSIX shell script that runs every ping at once and prints "<index> <exit code>" per ping.

    A rail-only 8 x 8 fabric has 56 silent pairs: one by one that is a minute of timeouts, all at once it is
    one timeout. The arguments are validated interface names and IPv4 addresses, quoted anyway.
    """
    lines = []
    for index, argv in enumerate(commands):
        lines.append('( %s >/dev/null 2>&1; echo "%d $?" ) &' % (" ".join(shlex.quote(a) for a in argv), index))
    lines.append("wait")
    return "\n".join(lines) + "\n"


def parse_ping_results(text, count):
    """Exit codes by index from parallel_ping_script's output; a missing line counts as unreachable (None)."""
    codes = [None] * count
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit() and parts[1].lstrip("-").isdigit() and int(parts[0]) < count:
            codes[int(parts[0])] = int(parts[1])
    return codes
