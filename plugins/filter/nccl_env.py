# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter llmops.inference.nccl_env: the pods' NCCL/GLOO env from rdma_check's facts."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: nccl_env
short_description: NCCL/GLOO environment for serving pods from rdma_check facts
version_added: 0.1.0
description:
  - Computes C(NCCL_IB_HCA), C(NCCL_IB_GID_INDEX), C(NCCL_IB_DISABLE), C(NCCL_NET_GDR_LEVEL),
    C(NCCL_SOCKET_IFNAME) and C(GLOO_SOCKET_IFNAME) from the return of M(llmops.inference.rdma_check)
    (kept as C(llmops_rdma)), through the same code rdma_check and nccl_check use.
positional: overrides
options:
  _input:
    description: The return value of M(llmops.inference.rdma_check).
    type: dict
    required: true
  overrides:
    description: Variables to set (string value) or drop (null), applied last.
    type: dict
  as_list:
    description: Return a list of C({name, value}) (a container's env) instead of a dict.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Pod env from the RDMA facts, bootstrap on the pod network
  ansible.builtin.set_fact:
    sglang_nccl_env: >-
      {{ llmops_rdma | llmops.inference.nccl_env({'NCCL_SOCKET_IFNAME': 'eth0', 'GLOO_SOCKET_IFNAME': 'eth0'}) }}
"""

RETURN = r"""
_value:
  description: Variable name to string value (or a list of name/value dicts with as_list).
  type: raw
"""

from ansible_collections.llmops.inference.plugins.module_utils.nccl_env import as_pod_env, nccl_env_from_rdma
from ansible_collections.llmops.inference.plugins.plugin_utils.filters import filter_function


def nccl_env(rdma_facts, overrides=None, as_list=False):
    env = nccl_env_from_rdma(rdma_facts, overrides)
    return as_pod_env(env) if as_list else env


class FilterModule(object):
    def filters(self):
        return {"nccl_env": filter_function(nccl_env)}
