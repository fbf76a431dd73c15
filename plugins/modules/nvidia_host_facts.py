#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: nvidia_host_facts
short_description: NVIDIA GPUs and NVSwitches on the PCI bus, the loaded driver module and the reboot decision
version_added: 0.2.0
description:
  - Reads the PCI devices from sysfs (works before any driver is installed), the loaded nvidia module version
    (C(/sys/module/nvidia/version), else C(/proc/driver/nvidia/version)) and whether nouveau is loaded
    (C(/proc/modules)).
  - With O(installed_version), decides whether the host must reboot under O(reboot_policy) and says why.
  - Changes nothing; check mode runs the same reads.
options:
  root:
    description: Root under which C(sys/) and C(proc/) are read (tests read recorded trees).
    type: path
    default: /
  installed_version:
    description: Installed driver package version (dpkg/rpm form accepted, e.g. C(535.261.03-1~deb12u1)).
    type: str
  reboot_policy:
    description: C(never), C(when_needed) (nouveau loaded, or loaded module differs from the installed one),
      C(always) (also after any change of this run).
    type: str
    choices: [never, when_needed, always]
    default: when_needed
  changed:
    description: Whether this run changed the driver or the nouveau blacklist (for C(always)).
    type: bool
    default: false
  wanted_version:
    description:
      - The pinned full driver version (e.g. C(550.127.05)). With it the module refuses, before anything is
        installed, a pin that is not a full version or that would replace O(installed_version) unless
        O(allow_version_change); RV(version_action) says what the role will do.
    type: str
  allow_version_change:
    description: Whether an installed driver of another version may be replaced by O(wanted_version).
    type: bool
    default: false
  gpudirect:
    description:
      - GPUDirect RDMA path to decide on (RV(gpudirect_mode)). C(auto) picks DMA-BUF with the open kernel module
        on Linux 5.12 or later, else nvidia-peermem.
    type: str
    choices: [auto, peermem, dmabuf, none]
    default: auto
  running_kernel:
    description: False in a chroot or image build, where no module can be loaded and no reboot makes sense.
    type: bool
    default: true
author:
  - llmops.inference maintainers (@llmops)
"""

EXAMPLES = r"""
- name: Decide on a reboot after installing the driver
  llmops.inference.nvidia_host_facts:
    installed_version: "{{ ansible_facts.packages['nvidia-kernel-dkms'][0].version }}"
    reboot_policy: when_needed
  register: nvidia_host
"""

RETURN = r"""
gpus:
  description: NVIDIA GPUs on the PCI bus (address, vendor, device, class).
  type: list
  elements: dict
  returned: always
nvswitches:
  description: NVSwitches on the PCI bus (address, device, model); not empty means Fabric Manager is required.
  type: list
  elements: dict
  returned: always
loaded_driver_version:
  description: Version of the loaded nvidia module, null when none is loaded.
  type: str
  returned: always
nouveau_loaded:
  description: Whether the nouveau module is loaded.
  type: bool
  returned: always
reboot:
  description: Whether the host must reboot now.
  type: bool
  returned: always
load_module:
  description: Whether C(modprobe nvidia) is enough (driver installed, nothing loaded, no nouveau).
  type: bool
  returned: always
version_action:
  description: C(install), C(keep) or C(change) (only with O(wanted_version)).
  type: str
  returned: when O(wanted_version) is set
gpudirect_mode:
  description: C(dmabuf), C(peermem) or C(none), from O(gpudirect) and the loaded module and kernel.
  type: str
  returned: always
gpudirect_reason:
  description: Why that GPUDirect path.
  type: str
  returned: always
reason:
  description: Why (printed by the roles whatever the decision).
  type: str
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.llmops.inference.plugins.module_utils import bare_metal
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError, refuse_nul


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type="path", default="/"),
            installed_version=dict(type="str"),
            reboot_policy=dict(type="str", choices=list(bare_metal.REBOOT_POLICIES), default="when_needed"),
            changed=dict(type="bool", default=False),
            wanted_version=dict(type="str"),
            allow_version_change=dict(type="bool", default=False),
            running_kernel=dict(type="bool", default=True),
            gpudirect=dict(type="str", choices=list(bare_metal.GPUDIRECT_MODES), default="auto"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    extra = {}
    try:
        refuse_nul(module.params)
        if params["wanted_version"]:
            extra["version_action"] = bare_metal.check_version_change(
                params["installed_version"], params["wanted_version"], params["allow_version_change"]
            )
        pci = bare_metal.classify_pci(bare_metal.read_pci_devices(params["root"]))
        state = bare_metal.read_kernel_state(params["root"])
        decision = bare_metal.reboot_decision(
            params["reboot_policy"],
            params["installed_version"],
            state,
            changed=params["changed"],
            running_kernel=params["running_kernel"],
        )
        extra["gpudirect_mode"], extra["gpudirect_reason"] = bare_metal.gpudirect_mode(params["gpudirect"], state)
    except LlmopsError as exc:
        module.fail_json(msg=exc.message)
    module.exit_json(
        changed=False,
        gpus=pci["gpus"],
        nvswitches=pci["nvswitches"],
        loaded_driver_version=state["loaded_driver_version"],
        nouveau_loaded=state["nouveau_loaded"],
        **dict(decision, **extra),
    )


if __name__ == "__main__":
    main()
