# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja filters for the bare-metal roles; the logic lives in module_utils/bare_metal.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.llmops.inference.plugins.module_utils import bare_metal
from ansible_collections.llmops.inference.plugins.plugin_utils.filters import filter_function


def locked_version(available_versions, driver_version, component):
    """The package version of ``component`` equal to the driver's exact version, else a refusal."""
    return bare_metal.pick_locked_version(component, available_versions, driver_version)


def madison_versions(lines):
    """Versions from `apt-cache madison` lines (`pkg | version | source`)."""
    return [line.split("|")[1].strip() for line in lines or [] if line.count("|") >= 2]


class FilterModule(object):
    def filters(self):
        return {
            "locked_version": filter_function(locked_version),
            "madison_versions": filter_function(madison_versions),
            "driver_branch": filter_function(bare_metal.driver_branch),
            "upstream_version": filter_function(bare_metal.upstream_version),
        }
