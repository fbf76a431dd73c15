"""Dump an engine's real argument parser as JSON (run by record.py with the engine venv's python).

Usage: python dump_parser.py sglang|vllm
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


def dump(parser):
    options = []
    for action in parser._actions:
        if not action.option_strings or isinstance(action, argparse._HelpAction):
            continue
        options.append(
            {
                "names": list(action.option_strings),
                "dest": action.dest,
                "action": type(action).__name__,
                "type": _type_name(action),
                "nargs": action.nargs if not isinstance(action.nargs, int) else int(action.nargs),
                "choices": _choices(action),
                "default": _plain(action.default),
                "required": bool(action.required),
                "deprecated": _deprecation(action),
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
    from vllm.entrypoints.openai.cli_args import make_arg_parser
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    return make_arg_parser(FlexibleArgumentParser())


def _vllm_parser_compat():
    try:
        return vllm_parser()
    except ImportError:
        # vLLM <= 0.11 kept FlexibleArgumentParser in vllm.utils
        from vllm.entrypoints.openai.cli_args import make_arg_parser
        from vllm.utils import FlexibleArgumentParser

        return make_arg_parser(FlexibleArgumentParser())


def main():
    engine = sys.argv[1]
    parser = sglang_parser() if engine == "sglang" else _vllm_parser_compat()
    options, groups = dump(parser)
    print(
        json.dumps(
            {
                "engine": engine,
                "version": importlib.metadata.version(engine),
                "parser": "sglang.srt.server_args.ServerArgs.add_cli_args"
                if engine == "sglang"
                else "vllm.entrypoints.openai.cli_args.make_arg_parser",
                "options": options,
                "mutually_exclusive": groups,
            },
            indent=1,
            sort_keys=True,
        )
    )


if __name__ == "__main__":
    main()
