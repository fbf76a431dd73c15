"""Fuzz-style: every module gets malformed values of every option it documents and must answer with a
``failed`` message (or a clean result), never a traceback.

Each module starts from a baseline that runs here without hardware: tool paths point at files that do not
exist (so a module that would run nvidia-smi, hccn_tool or ping reports the missing tool), sysfs/proc roots
are empty folders, openai_check talks to a closed loopback port. Then one option at a time is replaced by
each malformed value of its documented type. Check mode throughout: nothing is written.
"""

import importlib
import json
import re
import signal

import pytest
import yaml
from ansible.module_utils.testing import patch_module_args

MISSING = "/nonexistent/llmops-fuzz/tool"

BASELINES = {
    "admission_check": {
        "objects": [{"kind": "Deployment", "metadata": {"name": "w"}, "spec": {"template": {"spec": {}}}}],
        "kubeconfig": "{tmp}/no-kubeconfig",
    },
    "fabric_check": {
        "local_interfaces": ["lo"],
        "require": "none",
        "ping_path": MISSING,
        "ip_path": MISSING,
        "timeout": 1,
        "count": 1,
    },
    "gpu_facts": {"nvidia_smi_path": MISSING, "proc_root": "{tmp}"},
    "hccl_check": {
        "npu_smi_path": MISSING,
        "hccn_tool_path": MISSING,
        "hccl_test_path": "{tmp}",
        "mpirun_path": MISSING,
        "health_wait": 0,
        "timeout": 5,
    },
    "hccn_network": {
        "host": "npu-0",
        "plan": {"npu-0": {"base": "10.0.0.10"}},
        "hccn_tool_path": MISSING,
        "hccn_conf_path": "{tmp}/hccn.conf",
    },
    "nccl_check": {"all_reduce_perf_path": MISSING, "torch_python": MISSING, "nvidia_smi_path": MISSING, "timeout": 5},
    "npu_facts": {"npu_smi_path": MISSING, "hccn_tool_path": MISSING},
    "nvidia_host_facts": {"root": "{tmp}"},
    "openai_benchmark": {"base_url": "http://127.0.0.1:9/v1", "timeout": 2},
    "openai_check": {"base_url": "http://127.0.0.1:9/v1", "timeout": 2},
    "pod_wait": {"namespace": "llmops"},
    "parallelism_plan": {"model": "Qwen/Qwen3-8B", "accelerator": "A800-80G", "accelerators_per_node": 8, "nodes": 1},
    "rdma_check": {"sysfs_root": "{tmp}", "proc_root": "{tmp}", "use_tools": "never"},
}

MALFORMED = {
    "str": ["", "\x00nul", "x" * 4096, ["a", "list"], {"a": "dict"}, 12, "not-a-url"],
    "int": ["abc", -1, 0, 2**63, [1], 1.5, ""],
    "float": ["abc", -1.0, 0, "nan", "inf", 1e308, ""],
    "bool": ["maybe", 2, ""],
    "list": ["a string", [None], [{"x": 1}], [[]], {}, [""]],
    "dict": ["string", [1], {"k": None}, {"k": "string"}, {"k": [1]}, {"": {}}, {"npu-0": "10.0.0.1"}],
    "path": ["", "\x00nul", "relative/path", "/nonexistent/deep/path"],
    "raw": [None, [], "x", {"a": 1}],
}


def documented_options(name):
    module = importlib.import_module("ansible_collections.llmops.inference.plugins.modules." + name)
    return module, yaml.safe_load(module.DOCUMENTATION)["options"]


def cases():
    for name in sorted(BASELINES):
        _module, options = documented_options(name)
        for option, spec in sorted(options.items()):
            values = list(MALFORMED.get(spec.get("type", "str"), MALFORMED["raw"]))
            if spec.get("choices"):
                values.append("bogus-choice")
            for index, value in enumerate(values):
                yield pytest.param(name, option, value, id="%s-%s-%d" % (name, option, index))


class Timeout(Exception):
    pass


def _alarm(*_):
    raise Timeout()


@pytest.mark.parametrize("name,option,value", list(cases()))
def test_malformed_option_fails_cleanly(name, option, value, tmp_path, capsys):
    module, _options = documented_options(name)
    args = {k: (v.replace("{tmp}", str(tmp_path)) if isinstance(v, str) else v) for k, v in BASELINES[name].items()}
    args[option] = value
    args["_ansible_check_mode"] = True
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(30)
    try:
        with patch_module_args(args), pytest.raises(SystemExit):
            module.main()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    out = capsys.readouterr().out
    result = json.loads(out[out.index("{") :])
    assert "exception" not in result and "Traceback" not in json.dumps(result)
    if result.get("failed"):
        assert isinstance(result.get("msg"), str) and result["msg"].strip()
        # A message, not a repr of a Python error.
        assert not re.search(r"\b(KeyError|TypeError|AttributeError|IndexError|ZeroDivisionError)\b", result["msg"]), (
            result["msg"]
        )
