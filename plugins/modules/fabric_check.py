#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: fabric_check
short_description: Fabric shape between GPU nodes - does every NIC reach every other node's NICs, or only its rail
version_added: 0.2.0
description:
  - Pings every address of O(peers) from every interface of O(local_interfaces), bound to that interface, all at
    once, and classifies the fabric as C(all-to-all), C(rail-only) (NIC i reaches only NIC i of the other nodes),
    C(partial) (some same-rail pair is silent too) or C(none).
  - Judges the shape against what the serving plan needs (O(require)). Expert-parallel all-to-all (DeepEP,
    NVSHMEM) needs C(all-to-all); TP/PP across nodes needs every same-rail pair. A plan that would hang on the
    fabric is refused before the engine group exists.
  - Also returns this node's own addresses of O(local_interfaces), which the other nodes use as their O(peers).
  - Sends only ICMP echo requests and changes nothing, so check mode runs it as well.
options:
  local_interfaces:
    description:
      - This node's GPU NICs (netdevs of the RDMA ports, e.g. C(ib0)..C(ib7) or the RoCE netdevs) in rail order.
    type: list
    elements: str
    required: true
  peers:
    description:
      - Host name to that host's C({interface - IPv4 address}) of its GPU NICs, in the same rail order, usually the
        RV(addresses) of this module on the other nodes. Empty means only the addresses are reported.
    type: dict
    default: {}
  require:
    description: C(all-to-all) for EP/DeepEP plans, C(rail) for TP/PP across nodes, C(none) to only report.
    type: str
    choices: [all-to-all, rail, none]
    default: rail
  count:
    description: Echo requests per pair.
    type: int
    default: 1
  timeout:
    description: Seconds to wait for a reply per pair.
    type: int
    default: 2
  ping_path:
    description: ping (iputils), a name looked up in PATH or an absolute path.
    type: str
    default: ping
  ip_path:
    description: ip (iproute2), to read this node's addresses.
    type: str
    default: ip
author:
  - llmops.inference maintainers (@llmops)
"""

EXAMPLES = r"""
- name: Report this node's GPU NIC addresses
  llmops.inference.fabric_check:
    local_interfaces: [ib0, ib1, ib2, ib3]
    require: none
  register: fabric_self

- name: Every NIC to every other node's NICs; an EP plan needs all-to-all
  llmops.inference.fabric_check:
    local_interfaces: [ib0, ib1, ib2, ib3]
    peers: >-
      {{ dict(groups['gpu_nodes'] | difference([inventory_hostname])
              | zip(groups['gpu_nodes'] | difference([inventory_hostname])
                    | map('extract', hostvars, ['fabric_self', 'addresses']))) }}
    require: all-to-all
"""

RETURN = r"""
addresses:
  description: This node's IPv4 address per interface of local_interfaces.
  type: dict
  returned: always
shape:
  description:
    - shape (all-to-all, rail-only, partial, none), pairs, reachable, same_rail_reachable, same_rail_pairs,
      cross_rail_reachable, cross_rail_pairs, unreachable (silent pairs, same-rail first),
      unreachable_same_rail.
  type: dict
  returned: when peers are given
results:
  description: One entry per pair (local, host, remote, address, reachable).
  type: list
  elements: dict
  returned: when peers are given
passed:
  description: Whether the shape carries what O(require) asks for.
  type: bool
  returned: always
reasons:
  description: Why not.
  type: list
  elements: str
  returned: always
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.llmops.inference.plugins.module_utils import fabric
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError


def _tool(module, name):
    path = module.get_bin_path(name) if "/" not in name else name
    # A path given explicitly must be an executable file (run_command would raise with a traceback).
    if not path or not os.access(path, os.X_OK):
        raise LlmopsError("%s not found: install it (iputils-ping / iproute2) or give its path" % name)
    return path


def check(module):
    params = module.params
    ifnames = fabric.validate_ifnames(params["local_interfaces"])
    rc, out, err = module.run_command([_tool(module, params["ip_path"]), "-4", "-o", "addr", "show"])
    if rc != 0:
        raise LlmopsError("ip -4 -o addr show exited with %d: %s" % (rc, (err or out).strip()[:300]))
    known = fabric.parse_ip_addr(out)
    missing = [name for name in ifnames if name not in known]
    if missing:
        raise LlmopsError(
            "local_interfaces %s have no IPv4 address on this host (it has: %s)"
            % (", ".join(missing), ", ".join(sorted(known)) or "none")
        )
    result = {"addresses": {name: known[name] for name in ifnames}, "passed": True, "reasons": []}
    if not params["peers"]:
        return result
    peers = fabric.validate_peers(params["peers"])
    ping = _tool(module, params["ping_path"])
    pairs = [
        (local, host, remote, address)
        for local in ifnames
        for host, nics in sorted(peers.items())
        for remote, address in nics.items()
    ]
    commands = [fabric.ping_command(ping, p[0], p[3], params["count"], params["timeout"]) for p in pairs]
    rc, out, err = module.run_command(["/bin/sh", "-c", fabric.parallel_ping_script(commands)])
    if rc != 0:
        raise LlmopsError("the ping script exited with %d: %s" % (rc, (err or out).strip()[:300]))
    codes = fabric.parse_ping_results(out, len(commands))
    results = [
        {"local": p[0], "host": p[1], "remote": p[2], "address": p[3], "reachable": code == 0}
        for p, code in zip(pairs, codes)
    ]
    shape = fabric.classify(results, ifnames, peers)
    reasons = fabric.judge(shape, params["require"])
    result.update(results=results, shape=shape, passed=not reasons, reasons=reasons)
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            local_interfaces=dict(type="list", elements="str", required=True),
            peers=dict(type="dict", default={}),
            require=dict(type="str", default="rail", choices=["all-to-all", "rail", "none"]),
            count=dict(type="int", default=1),
            timeout=dict(type="int", default=2),
            ping_path=dict(type="str", default="ping"),
            ip_path=dict(type="str", default="ip"),
        ),
        supports_check_mode=True,
    )
    for name in ("count", "timeout"):
        if not 1 <= module.params[name] <= 60:
            module.fail_json(msg="%s must be between 1 and 60, got %d" % (name, module.params[name]), reasons=[])
    try:
        result = check(module)
    except LlmopsError as exc:
        module.fail_json(msg=exc.message, reasons=[exc.message])
    if not result["passed"]:
        module.fail_json(msg="fabric check failed: " + "; ".join(result["reasons"]), changed=False, **result)
    shape = result.get("shape")
    result["msg"] = (
        "fabric is %s (%d of %d NIC pairs answer)" % (shape["shape"], shape["reachable"], shape["pairs"])
        if shape
        else "addresses: %s" % ", ".join("%s=%s" % kv for kv in sorted(result["addresses"].items()))
    )
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
