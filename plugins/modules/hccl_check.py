#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: hccl_check
short_description: Ascend node pre-flight - NPU network health, link state and the HCCL all-reduce test
version_added: 0.1.0
description:
  - The Ascend counterpart of M(llmops.inference.nccl_check), with the same result keys (RV(passed), RV(reasons),
    RV(peak_busbw_gbps), RV(results), RV(tool)).
  - Reads the NPUs from C(npu-smi info) (the position in its list is the device id C(hccn_tool -i) takes), then
    C(hccn_tool -i N -net_health -g) and C(hccn_tool -i N -link -g) for every NPU.
  - Runs CANN's HCCL test (C(mpirun -n <npus> all_reduce_test -b 8K -e 1G -f 2 -d fp32 -o sum -p <npus>)) when
    C(all_reduce_test) is found under O(hccl_test_path) and C(mpirun) is found; otherwise it reports the health
    checks only and RV(bandwidth_skipped) says why the bandwidth test did not run (O(bandwidth_test=required)
    makes that a failure).
  - hccl_test prints algorithm bandwidth; the judge uses bus bandwidth, C(busbw = algbw x 2(n-1)/n) for
    all-reduce on n NPUs (as nccl-tests), so expected values mean the same as for M(llmops.inference.nccl_check).
  - Fails, naming every NPU by device id with the fix, when an NPU's net_health is not C(Success) or its link is
    not C(UP); fails when a size's C(check_result) is C(failed) or a rank reports a failed check, and when the
    peak bus bandwidth of sizes of at least O(judge_min_bytes) is below the expected value minus O(tolerance).
  - The expected value comes from O(expected_busbw_gbps), else the first matching entry of O(expected_table), else
    the collection's table (NPU model from npu-smi, NPU count; docs/node_health.md).
  - With O(hccl_output) it runs nothing and judges an all_reduce_test output a user already has.
  - Check mode runs only the read-only commands (npu-smi info, hccn_tool -net_health/-link -g) and skips the
    bandwidth test, which occupies every NPU of the host for minutes.
options:
  hccl_output:
    description:
      - Output of C(all_reduce_test) (the text, or the path of a file on the managed host) to judge instead of
        running anything. Needs O(npus), the number of ranks the test ran on.
    type: str
    aliases: [hccl_log]
  npu_smi_path:
    description: npu-smi binary (name in PATH or absolute path).
    type: str
    default: npu-smi
  hccn_tool_path:
    description: hccn_tool binary (name in PATH or absolute path).
    type: str
    default: hccn_tool
  hccl_test_path:
    description: Folder holding CANN's hccl_test binaries (C(all_reduce_test)), or the hccl_test folder above it.
    type: str
    default: /usr/local/Ascend/ascend-toolkit/latest/tools/hccl_test/bin
  mpirun_path:
    description: mpirun of the MPI hccl_test was built with (MPICH or Open MPI), a name in PATH or a path.
    type: str
    default: mpirun
  mpirun_args:
    description: Extra mpirun arguments before C(-n), e.g. C(--allow-run-as-root) for Open MPI run as root.
    type: list
    elements: str
    default: []
  bandwidth_test:
    description:
      - C(auto) runs the all-reduce when all_reduce_test and mpirun are found, C(required) fails when they are not,
        C(never) runs the health checks only.
    type: str
    choices: [auto, required, never]
    default: auto
  npus:
    description:
      - Number of NPUs the all-reduce runs on (the first N); all NPUs npu-smi lists when omitted. With
        O(hccl_output), the number of ranks of that run (required there).
    type: int
  npu_model:
    description: NPU model for the expected-value lookup (e.g. 910B3); read from npu-smi when omitted.
    type: str
  min_bytes:
    description: Smallest message (bytes, or with K/M/G suffix).
    type: str
    default: 8K
  max_bytes:
    description: Largest message (bytes, or with K/M/G suffix).
    type: str
    default: 1G
  step_factor:
    description: Multiplication factor between sizes.
    type: int
    default: 2
  iters:
    description: Timed iterations per size.
    type: int
    default: 20
  warmup_iters:
    description: Warm-up iterations per size.
    type: int
    default: 5
  hccl_env:
    description:
      - Environment for mpirun on top of the module's own (e.g. C(HCCL_*) variables, or C(LD_LIBRARY_PATH) with the
        CANN and MPI libraries when the remote shell does not source CANN's set_env.sh).
    type: dict
    default: {}
  expected_busbw_gbps:
    description: Expected large-message bus bandwidth in GB/s; overrides the table.
    type: float
  expected_table:
    description: Entries (model substring, gpus = NPU count or null, link hccs or null, busbw_gbps, source) looked up
      before the built-in table.
    type: list
    elements: dict
    default: []
  tolerance:
    description: Accepted shortfall below the expected value, as a fraction.
    type: float
    default: 0.1
  judge_min_bytes:
    description: Only sizes of at least this count for the peak bus bandwidth (small messages measure latency).
    type: str
    default: 1G
  require_detect_ip:
    description:
      - Whether net_health C(Detect ip set) (no detect IP configured, so nothing is probed) fails the check. False
        for nodes whose address plan gives no detect IP.
    type: bool
    default: true
  health_wait:
    description:
      - Seconds to keep re-reading net_health while an NPU still reports C(Init) (its probe has not finished since
        the address was set).
    type: int
    default: 30
  timeout:
    description: Seconds the all-reduce test may take.
    type: int
    default: 900
author:
  - llmops.inference maintainers (@llmops)
"""

EXAMPLES = r"""
- name: Health of every NPU port, and the HCCL all-reduce when CANN's hccl_test is installed
  llmops.inference.hccl_check:
    mpirun_args: [--allow-run-as-root]
  register: hccl

- name: Site-specific expectation, the test is required
  llmops.inference.hccl_check:
    bandwidth_test: required
    hccl_test_path: /opt/cann/tools/hccl_test/bin
    expected_table:
      - {model: 910B3, gpus: 8, link: hccs, busbw_gbps: 160, source: "site acceptance test 2025-06"}

- name: Judge an all_reduce_test output a user already has (nothing runs)
  llmops.inference.hccl_check:
    hccl_output: /var/log/llmops/all_reduce_test.log
    npus: 8
    npu_model: 910B3
"""

RETURN = r"""
passed:
  description: Whether every judgement passed.
  type: bool
  returned: always
reasons:
  description: Why the check failed, each naming the NPU (device id) or size and the fix.
  type: list
  elements: str
  returned: always
health:
  description: Per NPU, the device id, net_health status and link state (empty with hccl_output).
  type: list
  elements: dict
  returned: success
results:
  description: One entry per message size (size_bytes, time_us, algbw_gbps, busbw_gbps, check_result).
  type: list
  elements: dict
  returned: success
peak_busbw_gbps:
  description: Highest bus bandwidth (GB/s) among sizes of at least judge_min_bytes; null when the test did not run.
  type: float
  returned: success
expected_busbw_gbps:
  description: Expected bus bandwidth (GB/s); null when neither the argument nor a table entry gives one.
  type: float
  returned: success
expected_source:
  description: Where the expected value comes from.
  type: str
  returned: success
tool:
  description: C(hccl_test) when the all-reduce ran or was judged, null when only the health checks ran.
  type: str
  returned: success
bandwidth_skipped:
  description: Why the all-reduce did not run (null when it ran).
  type: str
  returned: success
command:
  description: The mpirun command line that ran (empty when none ran).
  type: list
  elements: str
  returned: success
npu_model:
  description: NPU model used for the lookup.
  type: str
  returned: success
npu_count:
  description: Number of NPUs the all-reduce ran on (or was judged for).
  type: int
  returned: success
duration_s:
  description: Seconds the all-reduce took (0 when it did not run).
  type: float
  returned: success
table:
  description: The health and the sizes as printable lines.
  type: list
  elements: str
  returned: success
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.llmops.inference.plugins.module_utils import ascend, hccl, nccl_tests
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError, refuse_nul


def read_output(value):
    """The text of hccl_output: the value itself when it holds the test's table, else the file it names."""
    if "\n" in value or "|" in value:
        return value
    try:
        with open(value, errors="replace") as handle:
            return handle.read()
    except OSError as exc:
        raise LlmopsError("hccl_output is neither all_reduce_test output nor a readable file: %s" % exc)


def expectation(module, model, npus, judged):
    """(expected busbw, source); warns when an all-reduce is judged without one."""
    params = module.params
    expected, entry = hccl.lookup_expected(model, npus, params["expected_table"])
    source = entry.get("source", "expected_table") if entry else None
    if params["expected_busbw_gbps"] is not None:
        expected, source = params["expected_busbw_gbps"], "expected_busbw_gbps argument"
    if judged and expected is None:
        module.warn(
            "No expected bus bandwidth for %s x%d: only the result checks are judged; set expected_busbw_gbps or "
            "expected_table" % (model or "an unnamed NPU", npus)
        )
    return expected, source


def read_health(module, tool, devices):
    """Per-NPU health; re-read while a probe still says Init, up to health_wait seconds."""
    deadline = time.time() + module.params["health_wait"]
    health = hccl.read_health(module.run_command, tool, devices)
    while any(h["net_health"] == "Init" for h in health) and time.time() < deadline:
        time.sleep(3)
        health = hccl.read_health(module.run_command, tool, devices)
    return health


def bandwidth_tools(module):
    """(binary, mpirun, None) when the test can run, else (None, None, why not)."""
    params = module.params
    binary = hccl.all_reduce_test_binary(params["hccl_test_path"])
    if binary is None:
        return (
            None,
            None,
            (
                "all_reduce_test not found under hccl_test_path=%s (CANN toolkit's tools/hccl_test, built with "
                "'make MPI_HOME=... ASCEND_DIR=...')" % params["hccl_test_path"]
            ),
        )
    name = params["mpirun_path"]
    mpirun = name if "/" in name else module.get_bin_path(name)
    if not mpirun or not os.access(mpirun, os.X_OK):
        return None, None, "mpirun not found (mpirun_path=%s); install the MPI hccl_test was built with" % name
    return binary, mpirun, None


def sizes(params):
    min_bytes = nccl_tests.parse_size(params["min_bytes"])
    max_bytes = nccl_tests.parse_size(params["max_bytes"])
    if min_bytes > max_bytes:
        raise LlmopsError("min_bytes (%d) is larger than max_bytes (%d)" % (min_bytes, max_bytes))
    return min_bytes, max_bytes, nccl_tests.parse_size(params["judge_min_bytes"])


def judge_output(module):
    """Judge a user's all_reduce_test output without running anything."""
    params = module.params
    if params["npus"] is None:
        raise LlmopsError("hccl_output needs npus, the number of ranks the test ran on (busbw = algbw x 2(n-1)/n)")
    _min, _max, judge_min = sizes(params)
    parsed = hccl.parse_all_reduce_test(read_output(params["hccl_output"]))
    model = params["npu_model"] or ""
    expected, source = expectation(module, model, params["npus"], True)
    passed, reasons, peak = hccl.judge([], parsed, params["npus"], expected, params["tolerance"], judge_min)
    rows = hccl.with_busbw(parsed, params["npus"])
    return result(
        [],
        rows,
        peak,
        expected,
        source,
        passed=passed,
        reasons=reasons,
        tool="hccl_test",
        npu_model=model,
        npu_count=params["npus"],
    )


def result(health, rows, peak, expected, source, **extra):
    """The module's return, the same keys whether it ran the test, judged an output or only read health."""
    outcome = {
        "health": health,
        "results": rows,
        "peak_busbw_gbps": None if peak is None else round(peak, 2),
        "expected_busbw_gbps": expected,
        "expected_source": source,
        "tool": None,
        "bandwidth_skipped": None,
        "command": [],
        "duration_s": 0.0,
        "table": hccl.report_lines(health, rows),
    }
    outcome.update(extra)
    return outcome


def check(module):
    params = module.params
    min_bytes, max_bytes, judge_min = sizes(params)
    smi = ascend.resolve_tool(module.get_bin_path, params["npu_smi_path"], "npu_smi_path")
    info = ascend.read_npu_smi(module.run_command, smi)
    count = len(info["npus"])
    npus = params["npus"] or count
    if npus > count:
        raise LlmopsError("npus=%d but npu-smi lists %d NPUs" % (npus, count))
    model = params["npu_model"] or info["npus"][0]["name"]
    tool = ascend.resolve_tool(module.get_bin_path, params["hccn_tool_path"], "hccn_tool_path")
    health = read_health(module, tool, range(count))

    parsed, command, seconds, skipped, unmet = None, [], 0.0, None, []
    if params["bandwidth_test"] == "never":
        skipped = "bandwidth_test=never"
    elif module.check_mode:
        skipped = "check mode: the all-reduce occupies every NPU, only the read-only health checks ran"
    elif npus < 2:
        skipped = "an all-reduce needs at least 2 NPUs; this host has %d" % npus
    else:
        binary, mpirun, skipped = bandwidth_tools(module)
        if binary:
            command = hccl.all_reduce_test_command(
                mpirun,
                params["mpirun_args"],
                binary,
                npus,
                min_bytes,
                max_bytes,
                params["step_factor"],
                params["iters"],
                params["warmup_iters"],
            )
            env = dict(os.environ)
            env.update({str(k): str(v) for k, v in params["hccl_env"].items()})
            text, seconds = nccl_tests.run_sweep(command, env, params["timeout"])
            parsed = hccl.parse_all_reduce_test(text)
        elif params["bandwidth_test"] == "required":
            unmet.append("bandwidth_test=required but " + skipped)
    if skipped and not unmet:
        module.warn("HCCL all-reduce not run: %s; only net_health and link were checked" % skipped)
    expected, source = expectation(module, model, npus, parsed is not None)
    passed, reasons, peak = hccl.judge(
        health,
        parsed,
        npus,
        expected,
        params["tolerance"],
        judge_min,
        require_detect_ip=params["require_detect_ip"],
    )
    reasons.extend(unmet)
    rows = hccl.with_busbw(parsed, npus) if parsed is not None else []
    return result(
        health,
        rows,
        peak,
        expected,
        source,
        passed=not reasons,
        reasons=reasons,
        tool="hccl_test" if parsed is not None else None,
        bandwidth_skipped=skipped,
        command=command,
        npu_model=model,
        npu_count=npus,
        duration_s=round(seconds, 1),
    )


def validate(params):
    refuse_nul(params)
    for name in ("step_factor", "iters", "timeout"):
        least = 2 if name == "step_factor" else 1
        if params[name] < least:
            raise LlmopsError("%s must be at least %d, got %d" % (name, least, params[name]))
    if params["warmup_iters"] < 0 or params["health_wait"] < 0:
        raise LlmopsError("warmup_iters and health_wait must be >= 0")
    if params["npus"] is not None and params["npus"] < 1:
        raise LlmopsError("npus must be at least 1, got %d" % params["npus"])
    if not 0 <= params["tolerance"] < 1:
        raise LlmopsError("tolerance must be a fraction in [0, 1), got %r" % params["tolerance"])
    if params["expected_busbw_gbps"] is not None and not 0 < params["expected_busbw_gbps"] < 1e6:
        raise LlmopsError(
            "expected_busbw_gbps must be a positive number of GB/s, got %r" % params["expected_busbw_gbps"]
        )


def main():
    module = AnsibleModule(
        argument_spec=dict(
            hccl_output=dict(type="str", aliases=["hccl_log"]),
            npu_smi_path=dict(type="str", default="npu-smi"),
            hccn_tool_path=dict(type="str", default="hccn_tool"),
            hccl_test_path=dict(type="str", default=hccl.DEFAULT_HCCL_TEST_PATH),
            mpirun_path=dict(type="str", default="mpirun"),
            mpirun_args=dict(type="list", elements="str", default=[]),
            bandwidth_test=dict(type="str", default="auto", choices=["auto", "required", "never"]),
            npus=dict(type="int"),
            npu_model=dict(type="str"),
            min_bytes=dict(type="str", default="8K"),
            max_bytes=dict(type="str", default="1G"),
            step_factor=dict(type="int", default=2),
            iters=dict(type="int", default=20),
            warmup_iters=dict(type="int", default=5),
            hccl_env=dict(type="dict", default={}),
            expected_busbw_gbps=dict(type="float"),
            expected_table=dict(type="list", elements="dict", default=[]),
            tolerance=dict(type="float", default=0.1),
            judge_min_bytes=dict(type="str", default="1G"),
            require_detect_ip=dict(type="bool", default=True),
            health_wait=dict(type="int", default=30),
            timeout=dict(type="int", default=900),
        ),
        supports_check_mode=True,
    )
    try:
        validate(module.params)
        outcome = judge_output(module) if module.params["hccl_output"] is not None else check(module)
    except LlmopsError as exc:
        module.fail_json(msg=exc.message, passed=False, reasons=[exc.message])
    if not outcome["passed"]:
        module.fail_json(msg="Ascend node check failed: " + "; ".join(outcome["reasons"]), changed=False, **outcome)
    if outcome["peak_busbw_gbps"] is None:
        message = "%d NPUs: net_health Success and link UP on every NPU; all-reduce not run (%s)" % (
            len(outcome["health"]),
            outcome["bandwidth_skipped"],
        )
    else:
        message = "peak busbw %.1f GB/s (hccl_test, %d NPUs)" % (outcome["peak_busbw_gbps"], outcome["npu_count"])
    module.exit_json(changed=False, msg=message, **outcome)


if __name__ == "__main__":
    main()
