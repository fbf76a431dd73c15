# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side helpers shared by the collection's filter plugins."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import functools

from ansible.errors import AnsibleFilterError

from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError


def filter_function(function):
    """Expose a module_utils function as a filter: LlmopsError becomes a clean AnsibleFilterError."""

    @functools.wraps(function)
    def wrapped(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except LlmopsError as error:
            raise AnsibleFilterError(error.message)

    return wrapped
