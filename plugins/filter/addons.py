# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja filters for the cluster add-on roles; the logic lives in module_utils/addons.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.llmops.inference.plugins.module_utils import addons
from ansible_collections.llmops.inference.plugins.plugin_utils.filters import filter_function


def addon_release(addon, version, allow_unknown=False, chart_version=""):
    """{version, chart, chart_version, known, ...} of a catalog version (images left out)."""
    info = addons.resolve_version(addon, version, allow_unknown=allow_unknown, chart_version=chart_version)
    return {key: value for key, value in info.items() if key != "images"}


def addon_chart_ref(source, chart, version, repo_url="", oci_ref="", archive=""):
    return addons.chart_reference(source, chart, version, repo_url=repo_url, oci_ref=oci_ref, archive=archive)


class FilterModule(object):
    def filters(self):
        return {
            "addon_release": filter_function(addon_release),
            "addon_values": filter_function(addons.build_values),
            "addon_chart_ref": filter_function(addon_chart_ref),
            "lws_upgrade_plan": filter_function(addons.lws_upgrade_plan),
            "field_at": filter_function(addons.field_at),
        }
