# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja filters for day-two serving: autoscaling and routing across replicas (logic in module_utils)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.llmops.inference.plugins.module_utils import autoscaling, routing
from ansible_collections.llmops.inference.plugins.plugin_utils.filters import filter_function


class FilterModule(object):
    def filters(self):
        return {
            "autoscaling_plan": filter_function(autoscaling.autoscaling_plan),
            "inference_routing_manifests": filter_function(routing.routing_manifests),
        }
