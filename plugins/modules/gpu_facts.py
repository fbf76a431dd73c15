#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: gpu_facts
short_description: NVIDIA GPUs, topology, NVSwitch/Fabric Manager state and error counters of a host
version_added: 0.1.0
description:
  - Reads C(nvidia-smi --query-gpu), the C(nvidia-smi) banner (driver and CUDA version), C(nvidia-smi topo -m)
    (NVLink/PCIe links between GPU pairs, CPU/NUMA affinity, NICs), C(nvidia-smi nvlink -s), the C(Fabric)
    section of C(nvidia-smi -q), the NVSwitch devices the driver lists and XID events in the kernel log.
  - Judges what is worth failing on before a model is loaded; uncorrected ECC errors, critical XIDs,
    GPU pairs without NVLink or with fewer links than their peers, a fabric that is not ready,
    NVSwitches without an active Fabric Manager, and a GPU count other than expected.
  - Changes nothing; check mode runs the same reads.
options:
  nvidia_smi_path:
    description: nvidia-smi binary, a name looked up in PATH or an absolute path.
    type: str
    default: nvidia-smi
  expected_gpu_count:
    description: Number of GPUs the host must have; not checked when omitted.
    type: int
  expected_driver_version:
    description:
      - Exact NVIDIA driver version the host must run (the pin of the C(nvidia_driver) role, e.g. C(550.127.05)).
        A different version is a problem (a reboot or a re-run of C(nvidia_driver) is due); not checked when omitted.
    type: str
    version_added: 0.2.0
  check_xid:
    description: Read the kernel log (C(dmesg)) for XID events; unreadable logs give a warning.
    type: bool
    default: true
  fail_on_problems:
    description: Fail when RV(problems) is not empty; with false the module only reports.
    type: bool
    default: true
  proc_root:
    description: Root under which C(proc/driver/nvidia-nvswitch/devices) is looked for (tests).
    type: path
    default: /
author:
  - llmops.inference maintainers (@llmops)
"""

EXAMPLES = r"""
- name: GPU facts of every GPU node, failing on ECC/XID/NVLink problems
  llmops.inference.gpu_facts:
    expected_gpu_count: 8
  register: gpu

- name: The driver nvidia_driver pinned is the one running
  llmops.inference.gpu_facts:
    expected_driver_version: "550.127.05"

- name: Report only
  llmops.inference.gpu_facts:
    fail_on_problems: false
"""

RETURN = r"""
gpus:
  description: One entry per GPU (index, name, uuid, pci_bus_id, memory_total_mib, driver_version, mig_mode,
    persistence_mode, ecc_mode, ecc_uncorrected_volatile, ecc_uncorrected_aggregate).
  type: list
  elements: dict
  returned: success
gpu_count:
  description: Number of GPUs.
  type: int
  returned: success
gpu_model:
  description: Name of GPU 0 as nvidia-smi prints it.
  type: str
  returned: success
driver_version:
  description: NVIDIA driver version.
  type: str
  returned: success
cuda_version:
  description: Highest CUDA version the driver supports (nvidia-smi banner).
  type: str
  returned: success
topology:
  description: Parsed C(nvidia-smi topo -m) (gpus, links per pair, affinity, nics, link_type nvlink/pcie/mixed/single).
  type: dict
  returned: success
link_type:
  description: nvlink when every GPU pair has NVLink, pcie when none has, mixed when some have, single for one GPU.
  type: str
  returned: success
nvlink:
  description: C(nvidia-smi nvlink -s) per GPU, link -> GB/s (null when the link is inactive).
  type: dict
  returned: success
nvswitches:
  description: NVSwitch devices the nvidia-nvswitch driver lists.
  type: list
  elements: str
  returned: success
fabric:
  description: Fabric state/status per GPU from C(nvidia-smi -q).
  type: list
  elements: dict
  returned: success
fabric_manager_active:
  description: Whether nvidia-fabricmanager is active (null when there are no NVSwitches or no systemctl).
  type: bool
  returned: success
xid_events:
  description: XID events found in the kernel log (pci, xid, text, critical).
  type: list
  elements: dict
  returned: success
problems:
  description: Reasons the node is not fit to serve; empty when healthy.
  type: list
  elements: str
  returned: always
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.llmops.inference.plugins.module_utils import nvidia_smi
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError, refuse_nul


def _run(module, command, what, required=True):
    rc, out, err = module.run_command(command)
    if rc != 0:
        if not required:
            module.warn("%s exited with %d: %s" % (what, rc, (err or out).strip()[:300]))
            return None
        raise LlmopsError("%s exited with %d: %s" % (what, rc, (err or out).strip()[:500]))
    return out


def gather(module):
    params = module.params
    binary = (
        module.get_bin_path(params["nvidia_smi_path"])
        if "/" not in params["nvidia_smi_path"]
        else params["nvidia_smi_path"]
    )
    if not binary or not os.access(binary, os.X_OK):
        raise LlmopsError(
            "nvidia-smi not found (nvidia_smi_path=%s): is the NVIDIA driver installed?" % params["nvidia_smi_path"]
        )
    gpus = nvidia_smi.parse_query_gpu(_run(module, nvidia_smi.query_command(binary), "nvidia-smi --query-gpu"))
    versions = nvidia_smi.parse_versions(_run(module, [binary], "nvidia-smi") or "")
    topo = None
    if len(gpus) > 1:
        topo_text = _run(module, [binary, "topo", "-m"], "nvidia-smi topo -m", required=False)
        topo = nvidia_smi.parse_topo_matrix(topo_text) if topo_text else None
    nvlink_text = _run(module, [binary, "nvlink", "-s"], "nvidia-smi nvlink -s", required=False)
    fabric_text = _run(module, [binary, "-q"], "nvidia-smi -q", required=False)
    nvswitches = nvidia_smi.nvswitch_devices(params["proc_root"])
    fm_active = None
    systemctl = module.get_bin_path("systemctl")
    if nvswitches and systemctl:
        rc, _out, _err = module.run_command([systemctl, "is-active", "--quiet", "nvidia-fabricmanager"])
        fm_active = rc == 0
    xids = []
    if params["check_xid"]:
        dmesg = module.get_bin_path("dmesg")
        if dmesg:
            xids = nvidia_smi.parse_xid_log(_run(module, [dmesg], "dmesg", required=False) or "")
        else:
            module.warn("dmesg not found: XID events not checked")
    fabric = nvidia_smi.parse_fabric_state(fabric_text or "")
    problems = nvidia_smi.judge_gpus(gpus, topo, xids, fabric, nvswitches, fm_active, params["expected_gpu_count"])
    driver_version = versions["driver_version"] or gpus[0]["driver_version"]
    problems.extend(nvidia_smi.judge_driver_version(driver_version, params["expected_driver_version"]))
    return {
        "gpus": gpus,
        "gpu_count": len(gpus),
        "gpu_model": gpus[0]["name"],
        "driver_version": driver_version,
        "cuda_version": versions["cuda_version"],
        "topology": topo,
        "link_type": topo["link_type"] if topo else "single",
        "nvlink": nvidia_smi.parse_nvlink_status(nvlink_text or ""),
        "nvswitches": nvswitches,
        "fabric": fabric,
        "fabric_manager_active": fm_active,
        "xid_events": xids,
        "problems": problems,
    }


def main():
    module = AnsibleModule(
        argument_spec=dict(
            nvidia_smi_path=dict(type="str", default="nvidia-smi"),
            expected_gpu_count=dict(type="int"),
            expected_driver_version=dict(type="str"),
            check_xid=dict(type="bool", default=True),
            fail_on_problems=dict(type="bool", default=True),
            proc_root=dict(type="path", default="/"),
        ),
        supports_check_mode=True,
    )
    if module.params["expected_gpu_count"] is not None and module.params["expected_gpu_count"] < 1:
        module.fail_json(msg="expected_gpu_count must be at least 1", problems=[])
    try:
        refuse_nul(module.params)
        result = gather(module)
    except LlmopsError as exc:
        module.fail_json(msg=exc.message, problems=[exc.message])
    if result["problems"] and module.params["fail_on_problems"]:
        module.fail_json(msg="GPU node not healthy: " + "; ".join(result["problems"]), changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
