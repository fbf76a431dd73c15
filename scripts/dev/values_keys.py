# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Record the key paths of an upstream chart's values.yaml as a fixture.

Usage: values_keys.py VALUES_YAML CHART VERSION SOURCE > tests/unit/fixtures/addons/<chart>-<version>.keys.yaml

Only key names and the upstream defaults of the image registry/repository keys are recorded (no
upstream code). A path ends in ``{}`` when the upstream default is an empty map (nodeSelector,
annotations...): any key below it is accepted.
"""

import re
import sys

import yaml


def walk(node, prefix, out):
    if isinstance(node, dict):
        if not node and prefix:
            out.append(prefix + ".{}")
            return
        for key, value in node.items():
            path = "%s.%s" % (prefix, key) if prefix else str(key)
            out.append(path)
            walk(value, path, out)


IMAGE_KEY = re.compile(r"(^|\.)(repository|registry|imageRegistry|image_registry|[a-z_]+_image_name)$")


def image_defaults(values, prefix="", out=None):
    """Upstream defaults of the keys that name an image's registry or repository."""
    out = {} if out is None else out
    if isinstance(values, dict):
        for key, value in values.items():
            path = "%s.%s" % (prefix, key) if prefix else str(key)
            if isinstance(value, dict):
                image_defaults(value, path, out)
            elif IMAGE_KEY.search(path) and isinstance(value, str):
                out[path] = value
    return out


def main():
    values_file, chart, version, source = sys.argv[1:5]
    with open(values_file) as handle:
        values = yaml.safe_load(handle) or {}
    keys = []
    walk(values, "", keys)
    doc = {
        "chart": chart,
        "version": version,
        "source": source,
        "images": dict(sorted(image_defaults(values).items())),
        "keys": sorted(set(keys)),
    }
    yaml.safe_dump(doc, sys.stdout, default_flow_style=False, sort_keys=False, width=200)


if __name__ == "__main__":
    main()
