# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the day-two playbooks (status, upgrade, uninstall; docs in the lifecycle_*.yml sidecars); the
logic is module_utils/lifecycle.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.llmops.inference.plugins.module_utils import lifecycle
from ansible_collections.llmops.inference.plugins.plugin_utils.filters import filter_function


class FilterModule(object):
    def filters(self):
        return {
            "lifecycle_addon_change": filter_function(lifecycle.addon_change),
            "lifecycle_addon_row": filter_function(lifecycle.addon_row),
            "lifecycle_workload_summary": filter_function(lifecycle.workload_summary),
            "lifecycle_status_report": filter_function(lifecycle.status_report),
            "lifecycle_upgrade_plan": filter_function(lifecycle.upgrade_plan),
            "lifecycle_rollout_state": filter_function(lifecycle.rollout_state),
            "lifecycle_uninstall_plan": filter_function(lifecycle.uninstall_plan),
            "lifecycle_crds_to_keep": filter_function(lifecycle.crds_to_keep),
        }
