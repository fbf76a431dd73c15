# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja filters for the apply path; the logic lives in module_utils/manifests.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.llmops.inference.plugins.module_utils import manifests
from ansible_collections.llmops.inference.plugins.plugin_utils.filters import filter_function


class FilterModule(object):
    def filters(self):
        return {
            "rewrite_images": filter_function(manifests.rewrite_images),
            "mirror_image": filter_function(manifests.mirror_image),
            "manifest_filename": filter_function(manifests.manifest_filename),
        }
