# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja filters for the serving roles; the logic lives in module_utils (serving, kserve, model_cache, exposure)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.llmops.inference.plugins.module_utils import exposure, kserve, model_cache, serving
from ansible_collections.llmops.inference.plugins.plugin_utils.filters import filter_function


def inference_server_argv(config, plan, multi_node=False):
    """The engine argv as one shell-quoted line, for showing the operator what will run."""
    return serving.shell_join(serving.server_argv(config, serving.validate_plan(plan), multi_node))


class FilterModule(object):
    def filters(self):
        return {
            "inference_server_manifests": filter_function(serving.server_manifests),
            "inference_server_argv": filter_function(inference_server_argv),
            "inference_server_rdma_check": filter_function(serving.check_rdma_resources),
            "inference_api_key_secret": filter_function(serving.api_key_secret),
            "model_cache_plan": filter_function(model_cache.cache_plan),
            "inference_exposure_manifests": filter_function(exposure.exposure_manifests),
            "inference_server_kserve_manifests": filter_function(kserve.kserve_manifests),
            "inference_server_kserve_s3_secret": filter_function(kserve.s3_credentials_secret),
        }
