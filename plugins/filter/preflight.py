# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of playbooks/preflight.yml (docs in the preflight_*.yml sidecars); the logic is module_utils/preflight.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import glob
import os

import yaml

from ansible_collections.llmops.inference.plugins.module_utils import preflight
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError
from ansible_collections.llmops.inference.plugins.plugin_utils.filters import filter_function


def _optional(options):
    """The options with ``required`` and ``default`` dropped: only what the inventory gives is checked (a role
    not used in this run needs none of its inputs; a dict default with no_log trips ansible-core's validator)."""
    result = {}
    for name, spec in (options or {}).items():
        spec = copy.deepcopy(spec)
        spec.pop("required", None)
        spec.pop("default", None)
        if isinstance(spec.get("options"), dict):
            spec["options"] = _optional(spec["options"])
        result[name] = spec
    return result


def preflight_argument_specs(roles_dir):
    """Every entry point of every role under ``roles_dir`` (its ``<role>/meta/argument_specs.yml``) as
    {role, entry_point, options}."""
    specs = []
    paths = glob.glob(os.path.join(str(roles_dir), "*", "meta", "argument_specs.yml"))
    if not paths:
        raise LlmopsError("no role argument specs under %s: is the collection installed whole?" % roles_dir)
    for path in sorted(paths):
        role = os.path.basename(os.path.dirname(os.path.dirname(path)))
        try:
            with open(path) as handle:
                data = yaml.safe_load(handle) or {}
        except (OSError, yaml.YAMLError) as error:
            raise LlmopsError("cannot read the argument specs of role %s (%s): %s" % (role, path, error))
        for entry_point, spec in sorted((data.get("argument_specs") or {}).items()):
            options = _optional((spec or {}).get("options"))
            # Entry points sharing one option set (main/build/apply) are validated once.
            same = [known for known in specs if known["role"] == role and known["options"] == options]
            if same:
                same[0]["entry_point"] += "," + entry_point
            else:
                specs.append({"role": role, "entry_point": entry_point, "options": options})
    return specs


class FilterModule(object):
    def filters(self):
        return {
            "preflight_argument_specs": filter_function(preflight_argument_specs),
            "preflight_groups": filter_function(preflight.check_groups),
            "preflight_hccn_plan": filter_function(preflight.check_hccn_plan),
            "preflight_inputs": filter_function(preflight.check_inputs),
            "preflight_nodes": filter_function(preflight.check_nodes),
            "preflight_plan_message": filter_function(preflight.plan_message),
            "preflight_secret": filter_function(preflight.check_secret),
            "preflight_version": filter_function(preflight.check_version),
        }
