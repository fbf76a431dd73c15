# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter llmops.inference.nccl_preflight_manifests: the serving pre-flight's objects."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: nccl_preflight_manifests
short_description: The serving pre-flight's objects - an all-reduce across the pods the engine group will use
version_added: 0.2.0
description:
  - ConfigMap (the sweep script), headless Service and Indexed Job of C(plan.nodes) pods whose pod spec is the
    engine worker's (image, node selection, accelerators, C(rdma/*), NCCL env, network mode, hardening) without
    the model, the probes and the cache wait. Pod C(i) runs the sweep as node rank C(i); pod 0 is the rendezvous.
  - An empty list for a single-node plan.
options:
  _input:
    description: The inference server settings (the inference_server role's C(_inference_server_config)).
    type: dict
    required: true
  plan:
    description: C(llmops_plan).
    type: dict
    required: true
  cache:
    description: C(llmops_model_cache).
    type: dict
    required: true
  preflight:
    description:
      - backend (nccl or gloo), device (cuda or cpu), min_bytes, max_bytes, iters, warmup, port, python,
        timeout_seconds, expected_transport, min_busbw_gbps, expect_gdr; omitted keys take the defaults.
    type: dict
"""

EXAMPLES = r"""
- name: Build the pre-flight objects
  ansible.builtin.set_fact:
    preflight_objects: >-
      {{ server_config | llmops.inference.nccl_preflight_manifests(llmops_plan, llmops_model_cache, {}) }}
"""

RETURN = r"""
_value:
  description: The objects in apply order (ConfigMap, Service, Job); empty for one node.
  type: list
  elements: dict
"""

from ansible_collections.llmops.inference.plugins.module_utils.nccl_preflight import preflight_manifests
from ansible_collections.llmops.inference.plugins.plugin_utils.filters import filter_function


class FilterModule(object):
    def filters(self):
        return {"nccl_preflight_manifests": filter_function(preflight_manifests)}
