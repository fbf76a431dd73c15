# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters llmops.inference.pod_wait_state, pod_wait_report, pod_wait_timeout_report: waits that say why."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.llmops.inference.plugins.module_utils.pod_wait import (
    blocked_message,
    pod_wait_state,
    stalled_message,
)
from ansible_collections.llmops.inference.plugins.plugin_utils.filters import filter_function


class FilterModule(object):
    def filters(self):
        return {
            "pod_wait_state": filter_function(pod_wait_state),
            "pod_wait_report": filter_function(blocked_message),
            "pod_wait_timeout_report": filter_function(stalled_message),
        }
