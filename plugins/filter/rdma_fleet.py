# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter llmops.inference.rdma_fleet: compare rdma_check's facts of every GPU node of a group."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: rdma_fleet
short_description: Compare the RDMA facts of every GPU node; the one NCCL env they can share
version_added: 0.2.0
description:
  - Takes C(host -> llmops_rdma) (the return of M(llmops.inference.rdma_check) on each GPU node) and compares the
    active HCA ports, link layers, rates, active MTUs, the RoCE v2 GID index and GPUDirect RDMA.
  - Returns C(consistent), the C(reasons) when the nodes differ, and the NCCL env computed from the first host's
    facts (the serving pods of one group share it, which is only right when C(consistent) is true).
options:
  _input:
    description: Host name to that host's C(llmops_rdma).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Compare every GPU node before the serving pods get one env
  ansible.builtin.set_fact:
    llmops_rdma_fleet: >-
      {{ dict(groups['gpu_nodes'] | zip(groups['gpu_nodes'] | map('extract', hostvars, 'llmops_rdma')))
         | llmops.inference.rdma_fleet }}
"""

RETURN = r"""
_value:
  description: C(consistent) (bool), C(reasons) (list of str), C(hosts) (list), C(nccl_env) (dict).
  type: dict
"""

from ansible_collections.llmops.inference.plugins.module_utils.nccl_env import nccl_env_from_rdma
from ansible_collections.llmops.inference.plugins.module_utils.rdma import compare_fleet
from ansible_collections.llmops.inference.plugins.plugin_utils.filters import filter_function


def rdma_fleet(facts_by_host):
    reasons = compare_fleet(facts_by_host)
    first = sorted(facts_by_host)[0]
    facts = facts_by_host[first]
    return {
        "consistent": not reasons,
        "reasons": reasons,
        "hosts": sorted(facts_by_host),
        "nccl_env": facts.get("nccl_env") or nccl_env_from_rdma(facts),
    }


class FilterModule(object):
    def filters(self):
        return {"rdma_fleet": filter_function(rdma_fleet)}
