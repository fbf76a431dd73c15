# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja filters for the openshift_ai role; the logic lives in module_utils/openshift_ai.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.llmops.inference.plugins.module_utils import openshift_ai
from ansible_collections.llmops.inference.plugins.plugin_utils.filters import filter_function


class FilterModule(object):
    def filters(self):
        return {
            "openshift_ai_manifests": filter_function(openshift_ai.stack_manifests),
            "openshift_ai_alm_example": filter_function(openshift_ai.alm_example),
        }
