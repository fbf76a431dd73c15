"""What the stand-in checks before it starts: the argv against the engine's recorded CLI, `$(VAR)` left
unexpanded, the model folder. Stdlib only (it runs in the test bed's Debian Python image)."""

from __future__ import annotations

import json
import os
import re
import struct

from ansible_collections.llmops.inference.plugins.module_utils import engine_cli

# A kubelet `$(VAR)` reference the kubelet did not expand (the variable is not in the container's env).
UNEXPANDED = re.compile(r"\$\([A-Za-z_][A-Za-z0-9_]*\)")
DEFAULT_VERSIONS = {"sglang": "0.5.23", "vllm": "0.33.0"}


class Refused(Exception):
    """The real engine would refuse to start with this input; the message is what it would print."""

    def __init__(self, message, code=2):
        super().__init__(message)
        self.code = code


def engine_version(engine):
    """The engine version this image stands in for: baked into the image's env at build time."""
    return os.environ.get("LLMOPS_STANDIN_%s_VERSION" % engine.upper()) or DEFAULT_VERSIONS[engine]


def schema_index(engine):
    directory = os.environ.get("LLMOPS_STANDIN_SCHEMAS") or os.path.join(os.path.dirname(__file__), "schemas")
    version = engine_version(engine)
    try:
        return engine_cli.Schema(engine_cli.load_schema(engine, version, directory))
    except engine_cli.LlmopsError as error:
        raise Refused("llmops-engine-standin: %s" % error.message, code=1) from error


def unexpanded(argv, environ):
    """Messages for every `$(VAR)` still in argv or in the env (the kubelet leaves unknown references as-is)."""
    found = []
    for item in argv:
        for ref in UNEXPANDED.findall(item):
            found.append("argv item %r still holds %s: the container env defines no %s" % (item, ref, ref[2:-1]))
    for name, value in sorted(environ.items()):
        for ref in UNEXPANDED.findall(value):
            found.append("env %s still holds %s: the container env defines no %s" % (name, ref, ref[2:-1]))
    return found


def parse(index, argv):
    """{dest: value} of argv by the recorded options (flags True; nargs +/* lists); refuses what the engine's
    argparse refuses (unknown flag, bad type, value outside choices, missing value). Deprecated flags pass
    with a warning, as the engines only warn about them."""
    problems = [p for p in engine_cli.validate_argv(index, argv) if "is deprecated" not in p]
    warnings = [p for p in engine_cli.validate_argv(index, argv) if "is deprecated" in p]
    if problems:
        raise Refused("error: " + "; ".join(problems))
    values = {}
    position = 0
    while position < len(argv):
        token = argv[position]
        position += 1
        flag, inline = (token.split("=", 1) + [None])[:2] if "=" in token else (token, None)
        option = index.lookup(flag)
        takes = engine_cli._takes_value(option)
        if takes == 0:
            values[option["dest"]] = True
            continue
        if inline is not None:
            items = [inline]
        elif takes == 1:
            items = [argv[position]]
            position += 1
        else:
            items = []
            while position < len(argv) and not argv[position].startswith("-"):
                items.append(argv[position])
                position += 1
        values[option["dest"]] = items if takes == "*" or option.get("nargs") in ("+", "*") else items[0]
    for option in index.options.values():
        if option.get("required") and option["dest"] not in values:
            raise Refused("error: the following arguments are required: %s" % "/".join(option["names"]))
    return values, warnings


def read_config_yaml(path):
    """SGLang's --config file: a flat YAML mapping of option names to scalars (what our start script writes)."""
    result = {}
    try:
        with open(path) as handle:
            lines = handle.read().splitlines()
    except OSError as error:
        raise Refused("error: cannot read --config %s: %s" % (path, error.strerror), code=1) from error
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, raw = line.partition(":")
        if not sep:
            raise Refused("error: --config %s: not a YAML mapping line: %r" % (path, line), code=1)
        raw = raw.strip()
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw.strip("'")
        result[key.strip()] = value
    return result


def config_argv(config):
    """SGLang turns each config key into its flag (underscores to dashes) ahead of the command line."""
    argv = []
    for key, value in config.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value not in (False, None):
            argv += [flag, str(value)]
    return argv


def _safetensors_header(path):
    with open(path, "rb") as handle:
        head = handle.read(8)
        if len(head) != 8:
            return None
        (size,) = struct.unpack("<Q", head)
        if size > 100 * 1024 * 1024:
            return None
        try:
            return json.loads(handle.read(size))
        except ValueError:
            return None


def check_model(path):
    """The model folder holds a complete model: config.json, and the safetensors index with every shard it
    names (or one model.safetensors), each shard a readable safetensors file. Returns a one-line summary."""
    if not os.path.isdir(path):
        raise Refused("error: model path %s is not a folder (the model cache is not mounted there?)" % path, code=1)
    config = os.path.join(path, "config.json")
    try:
        with open(config) as handle:
            json.load(handle)
    except (OSError, ValueError) as error:
        raise Refused("error: %s: no readable config.json (%s)" % (path, error), code=1) from error
    index = os.path.join(path, "model.safetensors.index.json")
    if os.path.exists(index):
        try:
            with open(index) as handle:
                shards = sorted(set(json.load(handle)["weight_map"].values()))
        except (OSError, ValueError, KeyError, AttributeError) as error:
            raise Refused("error: %s is no safetensors index (%s)" % (index, error), code=1) from error
    elif os.path.exists(os.path.join(path, "model.safetensors")):
        shards = ["model.safetensors"]
    else:
        raise Refused("error: %s holds no model.safetensors.index.json and no model.safetensors" % path, code=1)
    missing = [shard for shard in shards if not os.path.isfile(os.path.join(path, shard))]
    if missing:
        raise Refused(
            "error: %s is incomplete: %d of %d shards missing (%s)"
            % (path, len(missing), len(shards), ", ".join(missing[:5])),
            code=1,
        )
    broken = [shard for shard in shards if _safetensors_header(os.path.join(path, shard)) is None]
    if broken:
        raise Refused("error: %s: shards with no safetensors header: %s" % (path, ", ".join(broken[:5])), code=1)
    return "%s: config.json and %d shard(s) complete" % (path, len(shards))
