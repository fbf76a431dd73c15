#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: hccn_network
short_description: Ascend NPU network (address, netmask, gateway, netdetect, TLS) through hccn_tool, idempotently
version_added: 0.1.0
description:
  - Computes the NPU addresses of every host from O(plan) (per-host base + device index, or an explicit map) and
    validates the whole plan (IPv4 syntax, netmask, gateway/netdetect in the subnet, no address twice across all
    hosts) before anything is set.
  - Reads each device's current values with C(hccn_tool -i N -ip/-gateway/-netdetect/-tls -g) and runs
    C(hccn_tool -i N ... -s ...) only for what differs, so a second run reports changed=false.
  - Keeps O(hccn_conf_path) consistent with the plan (our keys set, other keys kept).
  - Afterwards verifies every link is UP (C(-link -g)) and optionally pings O(ping_addresses) from every device.
  - Check mode reports the commands and file change it would make and sets nothing.
options:
  host:
    description: This host's name in O(plan), usually C(inventory_hostname).
    type: str
    required: true
  plan:
    description:
      - Every host of the NPU group, host name to a spec; C(base) (first address; device i gets base + i * C(stride))
        or C(addresses) (device index to address), and optionally C(netmask), C(gateway), C(netdetect), C(tls),
        C(stride). All hosts are given so duplicates across hosts are found.
    type: dict
    required: true
  defaults:
    description: Values every host spec inherits (netmask, gateway, netdetect, tls, stride).
    type: dict
    default: {}
  device_count:
    description: NPUs per host.
    type: int
    default: 8
  hccn_tool_path:
    description: hccn_tool binary (name in PATH or absolute path).
    type: str
    default: hccn_tool
  hccn_conf_path:
    description: The hccn configuration file kept consistent with the plan.
    type: path
    default: /etc/hccn.conf
  manage_conf:
    description: Whether to keep O(hccn_conf_path) consistent.
    type: bool
    default: true
  verify_link:
    description: Fail when a device's link is not UP after the change (reported only in check mode).
    type: bool
    default: true
  ping_addresses:
    description: Addresses each device must reach (C(hccn_tool -i N -ping -g address A)), e.g. the peer host's NPUs.
    type: list
    elements: str
    default: []
author:
  - llmops.inference maintainers (@llmops)
"""

EXAMPLES = r"""
- name: NPU network of every Ascend node (seed 003's addresses, validated)
  llmops.inference.hccn_network:
    host: "{{ inventory_hostname }}"
    defaults:
      netmask: 255.255.255.0
      gateway: 10.197.90.254
      netdetect: 10.197.90.254
      tls: 0
    plan:
      node01: {base: 10.197.90.10}
      node02: {base: 10.197.90.20}
"""

RETURN = r"""
desired:
  description: This host's planned network per device index.
  type: dict
  returned: success
current:
  description: Each device's values read before any change.
  type: dict
  returned: success
changes:
  description: Per device, the fields that differ (before/after).
  type: dict
  returned: success
commands:
  description: hccn_tool commands run (or that would run in check mode).
  type: list
  elements: list
  returned: success
conf_changed:
  description: Whether the hccn.conf file was (or would be) rewritten.
  type: bool
  returned: success
links:
  description: Link state per device after the change.
  type: dict
  returned: success
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.llmops.inference.plugins.module_utils import ascend
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError


def _read_file(path):
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return ""


def apply(module):
    params = module.params
    plan = ascend.compute_address_plan(params["plan"], params["device_count"], params["defaults"])
    if params["host"] not in plan:
        raise LlmopsError("host %s is not in the plan (hosts: %s)" % (params["host"], ", ".join(sorted(plan))))
    desired = plan[params["host"]]
    tool = ascend.resolve_tool(module.get_bin_path, params["hccn_tool_path"], "hccn_tool_path")
    current, changes, commands = {}, {}, []
    for index, entry in sorted(desired.items()):
        current[index] = ascend.read_device_network(module.run_command, tool, index)
        diff = ascend.diff_device(current[index], entry)
        if diff:
            changes[index] = diff
            commands.extend(ascend.set_commands(tool, index, entry, diff))
    conf_before = _read_file(params["hccn_conf_path"]) if params["manage_conf"] else ""
    conf_after = ascend.render_hccn_conf(conf_before, desired) if params["manage_conf"] else ""
    conf_changed = params["manage_conf"] and conf_before != conf_after
    result = {
        "desired": desired,
        "current": current,
        "changes": changes,
        "commands": commands,
        "conf_changed": conf_changed,
        "changed": bool(commands) or conf_changed,
        "links": {},
    }
    if module._diff and conf_changed:
        result["diff"] = {
            "before": conf_before,
            "after": conf_after,
            "before_header": params["hccn_conf_path"],
            "after_header": params["hccn_conf_path"],
        }
    if module.check_mode:
        return result
    for command in commands:
        rc, out, err = module.run_command(command)
        if rc != 0:
            raise LlmopsError("%s exited with %d: %s" % (" ".join(command), rc, (err or out).strip()[:300]))
    if conf_changed:
        tmp = os.path.join(module.tmpdir, "hccn.conf")
        with open(tmp, "w") as handle:
            handle.write(conf_after)
        module.atomic_move(tmp, params["hccn_conf_path"])
    problems = []
    for index in sorted(desired):
        after = ascend.read_device_network(module.run_command, tool, index) if index in changes else current[index]
        left = ascend.diff_device(after, desired[index])
        if left:
            problems.append("device %d still differs after hccn_tool: %s" % (index, sorted(left)))
        if params["verify_link"]:
            result["links"][index] = ascend.read_link(module.run_command, tool, index)
            if result["links"][index] != "UP":
                problems.append("device %d link is %s" % (index, result["links"][index]))
        for address in params["ping_addresses"]:
            rc, out, err = module.run_command([tool, "-i", str(index), "-ping", "-g", "address", address])
            if rc != 0:
                problems.append("device %d cannot reach %s: %s" % (index, address, (err or out).strip()[:200]))
    if problems:
        raise LlmopsError("NPU network not ready: " + "; ".join(problems))
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            host=dict(type="str", required=True),
            plan=dict(type="dict", required=True),
            defaults=dict(type="dict", default={}),
            device_count=dict(type="int", default=8),
            hccn_tool_path=dict(type="str", default="hccn_tool"),
            hccn_conf_path=dict(type="path", default="/etc/hccn.conf"),
            manage_conf=dict(type="bool", default=True),
            verify_link=dict(type="bool", default=True),
            ping_addresses=dict(type="list", elements="str", default=[]),
        ),
        supports_check_mode=True,
    )
    try:
        result = apply(module)
    except LlmopsError as exc:
        module.fail_json(msg=exc.message)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
