# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter llmops.inference.nccl_preflight_report: judge the serving pre-flight from its pods' logs."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: nccl_preflight_report
short_description: Judge the serving pre-flight from the logs of every pod
version_added: 0.2.0
description:
  - Reads the all-reduce table (pod 0) and the C(NCCL_DEBUG=INFO) channel lines of every pod with the code
    the nccl_check module uses. Fails the judgement on wrong values, a bus bandwidth below
    C(min_busbw_gbps), and on channels between nodes that do not use the expected transport (NET/Socket while
    the RDMA facts say IB/RoCE), naming it.
options:
  _input:
    description: Pod name to that pod's log text.
    type: dict
    required: true
  preflight:
    description: The same settings as for C(nccl_preflight_manifests).
    type: dict
  rdma_facts:
    description: C(llmops_rdma); gives the expected inter-node transport and GID index when not set explicitly.
    type: dict
"""

EXAMPLES = r"""
- name: Judge the pre-flight
  ansible.builtin.set_fact:
    preflight_result: "{{ logs_by_pod | llmops.inference.nccl_preflight_report({}, llmops_rdma | default({})) }}"
"""

RETURN = r"""
_value:
  description: passed, reasons, peak_busbw_gbps, transports, expected_transport, table and lines (to print).
  type: dict
"""

from ansible_collections.llmops.inference.plugins.module_utils.nccl_preflight import judge_logs, report_lines
from ansible_collections.llmops.inference.plugins.plugin_utils.filters import filter_function


def nccl_preflight_report(logs_by_pod, preflight=None, rdma_facts=None):
    result = judge_logs(logs_by_pod, preflight, rdma_facts or None)
    result["lines"] = report_lines(result)
    return result


class FilterModule(object):
    def filters(self):
        return {"nccl_preflight_report": filter_function(nccl_preflight_report)}
