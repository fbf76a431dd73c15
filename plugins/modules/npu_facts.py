#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: npu_facts
short_description: Ascend NPUs of a host from npu-smi, and their network from hccn_tool
version_added: 0.1.0
description:
  - Parses C(npu-smi info) (NPU id, name, health, power, temperature, chip, bus id, AI core use, HBM use).
  - With O(network=true) reads every NPU's address, netmask, gateway, netdetect address, TLS switch and link
    state through C(hccn_tool -i N -ip/-gateway/-netdetect/-tls/-link -g).
  - Fails when an NPU's health is not OK, a link is not UP (with O(network=true)), or the count differs from
    O(expected_npu_count); with O(fail_on_problems=false) it only reports.
options:
  npu_smi_path:
    description: npu-smi binary (name in PATH or absolute path).
    type: str
    default: npu-smi
  hccn_tool_path:
    description: hccn_tool binary (name in PATH or absolute path).
    type: str
    default: hccn_tool
  network:
    description: Also read each NPU's network through hccn_tool.
    type: bool
    default: true
  expected_npu_count:
    description: Number of NPUs the host must have.
    type: int
  fail_on_problems:
    description: Fail when RV(problems) is not empty.
    type: bool
    default: true
author:
  - llmops.inference maintainers (@llmops)
"""

EXAMPLES = r"""
- name: NPU facts of the Ascend nodes
  llmops.inference.npu_facts:
    expected_npu_count: 8
  register: npu
"""

RETURN = r"""
npus:
  description: One entry per NPU (npu_id, name, health, power_w, temp_c, chip, bus_id, aicore_pct, hbm_used_mb,
    hbm_total_mb, and with network the address, netmask, gateway, netdetect, tls and link).
  type: list
  elements: dict
  returned: success
npu_count:
  description: Number of NPUs.
  type: int
  returned: success
npu_model:
  description: Name of the first NPU (e.g. 910B3).
  type: str
  returned: success
driver_version:
  description: Driver version from the npu-smi banner.
  type: str
  returned: success
problems:
  description: Reasons the node is not fit to serve.
  type: list
  elements: str
  returned: always
"""


from ansible.module_utils.basic import AnsibleModule

from ansible_collections.llmops.inference.plugins.module_utils import ascend
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError


def gather(module):
    params = module.params
    smi = ascend.resolve_tool(module.get_bin_path, params["npu_smi_path"], "npu_smi_path")
    info = ascend.read_npu_smi(module.run_command, smi)
    npus = info["npus"]
    problems = [
        "NPU %d (%s) health is %s" % (n["npu_id"], n["bus_id"], n["health"]) for n in npus if n["health"] != "OK"
    ]
    if params["network"]:
        tool = ascend.resolve_tool(module.get_bin_path, params["hccn_tool_path"], "hccn_tool_path")
        for index, npu in enumerate(npus):
            # hccn_tool -i takes the logical device id: the NPU's position in npu-smi's list
            npu.update(ascend.read_device_network(module.run_command, tool, index))
            npu["link"] = ascend.read_link(module.run_command, tool, index)
            if npu["link"] != "UP":
                problems.append("NPU %d network link is %s" % (index, npu["link"]))
    if params["expected_npu_count"] is not None and len(npus) != params["expected_npu_count"]:
        problems.append("%d NPUs found, %d expected" % (len(npus), params["expected_npu_count"]))
    return {
        "npus": npus,
        "npu_count": len(npus),
        "npu_model": npus[0]["name"],
        "driver_version": info["driver_version"],
        "problems": problems,
    }


def main():
    module = AnsibleModule(
        argument_spec=dict(
            npu_smi_path=dict(type="str", default="npu-smi"),
            hccn_tool_path=dict(type="str", default="hccn_tool"),
            network=dict(type="bool", default=True),
            expected_npu_count=dict(type="int"),
            fail_on_problems=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    if module.params["expected_npu_count"] is not None and module.params["expected_npu_count"] < 1:
        module.fail_json(msg="expected_npu_count must be at least 1", problems=[])
    try:
        result = gather(module)
    except LlmopsError as exc:
        module.fail_json(msg=exc.message, problems=[exc.message])
    if result["problems"] and module.params["fail_on_problems"]:
        module.fail_json(msg="NPU node not healthy: " + "; ".join(result["problems"]), changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
