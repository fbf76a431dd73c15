# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja filters for the apply path; the logic lives in module_utils/manifests.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.llmops.inference.plugins.module_utils import manifests
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError


def _wrap(function):
    def wrapped(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except LlmopsError as error:
            raise AnsibleFilterError(error.message)
    return wrapped


class FilterModule(object):
    def filters(self):
        return {
            "rewrite_images": _wrap(manifests.rewrite_images),
            "mirror_image": _wrap(manifests.mirror_image),
            "manifest_filename": _wrap(manifests.manifest_filename),
        }
