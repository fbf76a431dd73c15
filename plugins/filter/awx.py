# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja filters for the awx_configure role; the logic lives in module_utils/awx_config.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.llmops.inference.plugins.module_utils import awx_config
from ansible_collections.llmops.inference.plugins.plugin_utils.filters import filter_function


def awx_survey_spec(defaults, questions=None, model_sources=None, name="llmops.inference"):
    return awx_config.survey_spec(
        defaults=defaults or {}, questions=questions or None, model_sources=model_sources or None, name=name
    )


class FilterModule(object):
    def filters(self):
        return {
            "awx_survey_spec": filter_function(awx_survey_spec),
            "awx_workflow_nodes": filter_function(awx_config.workflow_nodes),
        }
