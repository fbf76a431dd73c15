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


def ascend_install_plan(installed, driver_version, firmware_version):
    """Installer runs from the installed versions ({driver, firmware}, None when absent) and the pins."""
    installed = installed or {}
    return bare_metal.ascend_install_plan(
        installed.get("driver") or None, installed.get("firmware") or None, driver_version, firmware_version
    )


def ascend_reboot(steps, policy, running_kernel=True):
    """Reboot decision after the Ascend installer runs (piped: the plan)."""
    return bare_metal.ascend_reboot_decision(policy, steps, running_kernel=running_kernel)


def madison_versions(lines):
    """Versions from `apt-cache madison` lines (`pkg | version | source`)."""
    return bare_metal.repository_versions(lines, "apt")


class FilterModule(object):
    def filters(self):
        return {
            "locked_version": filter_function(locked_version),
            "madison_versions": filter_function(madison_versions),
            "repository_versions": filter_function(bare_metal.repository_versions),
            "packages_at_version": filter_function(bare_metal.packages_at_version),
            "driver_branch": filter_function(bare_metal.driver_branch),
            "upstream_version": filter_function(bare_metal.upstream_version),
            "version_info": filter_function(bare_metal.parse_version_info),
            "ascend_install_plan": filter_function(ascend_install_plan),
            "ascend_reboot_decision": filter_function(ascend_reboot),
        }
