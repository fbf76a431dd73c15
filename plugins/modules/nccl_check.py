#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: nccl_check
short_description: All-reduce bandwidth sweep on a host's GPUs, judged against the expected bus bandwidth
version_added: 0.1.0
description:
  - Runs nccl-tests C(all_reduce_perf) when found, else an equivalent sweep through PyTorch's NCCL backend
    (one process per GPU, spawned by the host python that has torch), with the NCCL variables of O(nccl_env), the
    same ones the serving pods get (from M(llmops.inference.rdma_check) or the C(llmops.inference.nccl_env) filter).
  - Parses every size row (time, algbw, busbw, #wrong, out-of-place and in-place) and C(NCCL_DEBUG=INFO) lines.
  - Fails with the reasons when the peak bus bandwidth of messages of at least O(judge_min_bytes) is below the
    expected value minus O(tolerance), when a size reports wrong values, or when channels run over TCP sockets
    (C(NET/Socket)). With O(pairwise=true) every GPU pair is swept too, so a single slow link is named.
  - The expected value comes from O(expected_busbw_gbps), else the first matching entry of O(expected_table)
    followed by the collection's table (GPU model, GPU count, link type); see docs/node_health.md.
  - NVLink multicast stays off (C(NCCL_NVLS_ENABLE=0)) unless O(nccl_env) sets it.
  - With O(nccl_log) it runs nothing and judges a log the user already has (C(NCCL_DEBUG=INFO) output of all
    ranks, text or a file path) - which transport every channel used (P2P, SHM, NET/IB with or without GPUDirect
    RDMA, RoCE, NET/Socket), the HCAs and GID index seen, judged against O(expected_transport) or the RDMA facts.
  - A run whose inter-node channels are NET/Socket while IB/RoCE is expected fails with that sentence, whatever
    its bandwidth.
  - Changes nothing, so check mode runs the sweep as well.
options:
  nccl_log:
    description:
      - C(NCCL_DEBUG=INFO) output of every rank (text, or the path of a file on the managed host) to judge
        instead of running a sweep. Needs O(expected_transport) or O(rdma_facts).
    type: str
  expected_transport:
    description:
      - The transport the channels must use. C(nvlink) and C(shm) judge the channels inside a host; C(ib), C(roce)
        and C(socket) judge the channels between hosts.
      - Derived from O(rdma_facts) when omitted (C(roce) for active Ethernet ports, C(ib) for InfiniBand).
    type: str
    choices: [nvlink, shm, ib, roce, socket]
  rdma_facts:
    description:
      - The return of M(llmops.inference.rdma_check) (C(llmops_rdma)) on the hosts of the log; gives the expected
        inter-node transport and the RoCE GID index NCCL must use.
    type: dict
  expect_gdr:
    description: With C(ib)/C(roce), fail when no inter-node channel used GPUDirect RDMA (C(GDRDMA)).
    type: bool
    default: false
  tool:
    description: C(auto) prefers all_reduce_perf and falls back to torch; C(nccl-tests) or C(torch) force one.
    type: str
    choices: [auto, nccl-tests, torch]
    default: auto
  all_reduce_perf_path:
    description: nccl-tests all_reduce_perf binary, a name looked up in PATH or an absolute path.
    type: str
    default: all_reduce_perf
  torch_python:
    description: Python interpreter that can import torch, for the fallback sweep.
    type: str
    default: python3
  nvidia_smi_path:
    description: nvidia-smi, used to count GPUs and find their model and link type when not given.
    type: str
    default: nvidia-smi
  gpus:
    description: Number of GPUs to sweep (the first N visible ones); all GPUs when omitted.
    type: int
  gpu_model:
    description: GPU model for the expected-value lookup; read from nvidia-smi when omitted.
    type: str
  link_type:
    description: Link type for the expected-value lookup; read from C(nvidia-smi topo -m) when omitted.
    type: str
    choices: [nvlink, pcie, mixed]
  min_bytes:
    description: Smallest message (bytes, or with K/M/G suffix).
    type: str
    default: "8"
  max_bytes:
    description: Largest message (bytes, or with K/M/G suffix). Each GPU needs about three times this much memory.
    type: str
    default: 4G
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
  nccl_env:
    description: Environment for the sweep, normally the serving pods' NCCL variables (C(rdma_check)'s nccl_env).
    type: dict
    default: {}
  expected_busbw_gbps:
    description: Expected large-message bus bandwidth in GB/s; overrides the table.
    type: float
  expected_table:
    description: Entries (model substring, gpus or null, link, busbw_gbps, source) looked up before the built-in table.
    type: list
    elements: dict
    default: []
  tolerance:
    description: Accepted shortfall below the expected value, as a fraction.
    type: float
    default: 0.1
  judge_min_bytes:
    description: Only rows of at least this size count for the peak bus bandwidth (small messages measure latency).
    type: str
    default: 1G
  pairwise:
    description: Also sweep each GPU pair (sizes from judge_min_bytes to max_bytes) to name a slow pair.
    type: bool
    default: false
  timeout:
    description: Seconds one sweep may take.
    type: int
    default: 900
author:
  - llmops.inference maintainers (@llmops)
"""

EXAMPLES = r"""
- name: All-reduce check with the pods' NCCL env
  llmops.inference.nccl_check:
    nccl_env: "{{ llmops_rdma.nccl_env }}"
    tolerance: 0.1
  register: nccl

- name: Site-specific expectation, every pair swept
  llmops.inference.nccl_check:
    all_reduce_perf_path: /opt/nccl-tests/build/all_reduce_perf
    expected_table:
      - {model: H20, gpus: 8, link: nvlink, busbw_gbps: 360, source: "site acceptance test 2025-03"}
    pairwise: true

- name: Judge a multi-node log a user already has (nothing runs)
  llmops.inference.nccl_check:
    nccl_log: /var/log/llmops/nccl-allreduce.log
    rdma_facts: "{{ llmops_rdma }}"
    expect_gdr: true
"""

RETURN = r"""
results:
  description: One entry per message size (size_bytes, count, type, redop, root, out_of_place and in_place with
    time_us, algbw_gbps, busbw_gbps, wrong).
  type: list
  elements: dict
  returned: success
peak_busbw_gbps:
  description: Highest bus bandwidth (GB/s) among rows of at least judge_min_bytes.
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
passed:
  description: Whether every judgement passed.
  type: bool
  returned: success
reasons:
  description: Why the check failed (slow bus bandwidth with the shortfall, wrong values, socket fallback).
  type: list
  elements: str
  returned: always
tool:
  description: C(nccl-tests) or C(torch).
  type: str
  returned: success
duration_s:
  description: Seconds the sweeps took.
  type: float
  returned: success
nccl:
  description: From NCCL_DEBUG=INFO; nccl_version, network, transports, socket_channels, transport (as below).
  type: dict
  returned: success
transports:
  description:
    - Per channel connection (channel, src, dst, transport, kind, inter_node, net_device, gdr) and a summary per
      kind (nvlink, shm, ib, roce, socket), the kinds seen inside and between hosts, the HCAs, GID index,
      GPUDirect RDMA, hosts and ranks seen.
  type: dict
  returned: success
expected_transport:
  description: The transport judged against (argument or derived from rdma_facts); null when none.
  type: str
  returned: success
gpu_model:
  description: GPU model used for the lookup.
  type: str
  returned: success
gpu_count:
  description: Number of GPUs swept.
  type: int
  returned: success
link_type:
  description: Link type used for the lookup.
  type: str
  returned: success
pairs:
  description: With pairwise, per pair (gpus, peak_busbw_gbps, expected_busbw_gbps, passed, reasons).
  type: list
  elements: dict
  returned: success
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.llmops.inference.plugins.module_utils import nccl_log, nccl_tests, nccl_torch_sweep, nvidia_smi
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError


def _resolve(module, name):
    if "/" in name:
        return name if os.access(name, os.X_OK) else None
    return module.get_bin_path(name)


def discover_gpus(module):
    """(count, model, link_type) from nvidia-smi; None parts when nvidia-smi is missing."""
    smi = _resolve(module, module.params["nvidia_smi_path"])
    if not smi:
        return None, None, None
    rc, out, err = module.run_command(nvidia_smi.query_command(smi))
    if rc != 0:
        raise LlmopsError("nvidia-smi --query-gpu exited with %d: %s" % (rc, (err or out).strip()[:300]))
    gpus = nvidia_smi.parse_query_gpu(out)
    link = "single"
    if len(gpus) > 1:
        rc, out, err = module.run_command([smi, "topo", "-m"])
        if rc != 0:
            raise LlmopsError("nvidia-smi topo -m exited with %d: %s" % (rc, (err or out).strip()[:300]))
        link = nvidia_smi.parse_topo_matrix(out)["link_type"]
    return len(gpus), gpus[0]["name"], link


def choose_tool(module):
    """('nccl-tests', path) or ('torch', python); LlmopsError naming what is missing."""
    params = module.params
    if params["tool"] in ("auto", "nccl-tests"):
        path = _resolve(module, params["all_reduce_perf_path"])
        if path:
            return "nccl-tests", path
        if params["tool"] == "nccl-tests":
            raise LlmopsError(
                "all_reduce_perf not found (all_reduce_perf_path=%s); build nccl-tests or use tool=torch"
                % params["all_reduce_perf_path"]
            )
    python = _resolve(module, params["torch_python"])
    if python:
        probe = "import torch, torch.distributed as d; print(d.is_available() and d.is_nccl_available())"
        rc, out, _err = module.run_command([python, "-c", probe])
        if rc == 0 and out.strip().endswith("True"):
            return "torch", python
    raise LlmopsError(
        "Neither all_reduce_perf (all_reduce_perf_path=%s) nor a python with torch and NCCL "
        "(torch_python=%s) found" % (params["all_reduce_perf_path"], params["torch_python"])
    )


def sweep(module, tool, path, gpus, min_bytes, max_bytes, visible=None):
    params = module.params
    env = nccl_tests.sweep_env(os.environ, params["nccl_env"], visible)
    if tool == "nccl-tests":
        command = nccl_tests.all_reduce_perf_command(
            path, min_bytes, max_bytes, params["step_factor"], gpus, params["iters"], params["warmup_iters"]
        )
        text, seconds = nccl_tests.run_sweep(command, env, params["timeout"])
    else:
        script = os.path.join(module.tmpdir, "nccl_torch_sweep.py")
        with open(script, "w") as handle:
            handle.write(nccl_torch_sweep.script_source())
        command = [
            path,
            script,
            "--gpus",
            str(gpus),
            "--min-bytes",
            str(min_bytes),
            "--max-bytes",
            str(max_bytes),
            "--factor",
            str(params["step_factor"]),
            "--iters",
            str(params["iters"]),
            "--warmup",
            str(params["warmup_iters"]),
        ]
        text, seconds = nccl_tests.run_sweep(command, env, params["timeout"])
    parsed_log = nccl_log.parse_nccl_log(text)
    debug = nccl_tests.debug_summary(parsed_log)
    debug["transport_parsed"] = parsed_log
    return nccl_tests.parse_all_reduce_perf(text), debug, seconds


def transport_expectation(params):
    """(expected transport, expected GID index) from the arguments, the RDMA facts filling what is missing."""
    expected, gid_index = params["expected_transport"], None
    if params["rdma_facts"] is not None:
        derived, gid_index = nccl_log.expected_from_rdma(params["rdma_facts"])
        expected = expected or derived
    return expected, gid_index


def read_log(module, value):
    """The text of nccl_log: the value itself when it holds NCCL lines, else the file it names."""
    if "\n" in value or "NCCL" in value:
        return value
    try:
        with open(value, errors="replace") as handle:
            return handle.read()
    except OSError as exc:
        raise LlmopsError("nccl_log is neither NCCL_DEBUG output nor a readable file: %s" % exc)


def judge_log(module):
    """Judge a user's log without running anything."""
    params = module.params
    expected, gid_index = transport_expectation(params)
    if expected is None:
        raise LlmopsError("nccl_log needs expected_transport or rdma_facts to judge against")
    parsed = nccl_log.parse_nccl_log(read_log(module, params["nccl_log"]))
    passed, reasons = nccl_log.judge_transport(parsed, expected, gid_index, params["expect_gdr"])
    return {
        "passed": passed,
        "reasons": reasons,
        "transports": nccl_log.transport_report(parsed),
        "expected_transport": expected,
    }


def check(module):
    params = module.params
    min_bytes = nccl_tests.parse_size(params["min_bytes"])
    max_bytes = nccl_tests.parse_size(params["max_bytes"])
    judge_min = nccl_tests.parse_size(params["judge_min_bytes"])
    if min_bytes > max_bytes:
        raise LlmopsError("min_bytes (%d) is larger than max_bytes (%d)" % (min_bytes, max_bytes))
    count, model, link = discover_gpus(module)
    gpus = params["gpus"] or count
    if gpus is None:
        raise LlmopsError(
            "nvidia-smi not found (nvidia_smi_path=%s): give gpus, gpu_model and link_type" % params["nvidia_smi_path"]
        )
    if count is not None and gpus > count:
        raise LlmopsError("gpus=%d but the host has %d GPUs" % (gpus, count))
    if gpus < 2:
        raise LlmopsError("An all-reduce check needs at least 2 GPUs; this host has %s" % gpus)
    model = params["gpu_model"] or model or ""
    link = params["link_type"] or link
    tool, path = choose_tool(module)
    parsed, debug, seconds = sweep(module, tool, path, gpus, min_bytes, max_bytes)
    expected, entry = nccl_tests.lookup_expected(model, gpus, link, params["expected_table"])
    source = entry.get("source", "expected_table") if entry else None
    if params["expected_busbw_gbps"] is not None:
        expected, source = params["expected_busbw_gbps"], "expected_busbw_gbps argument"
    if expected is None:
        module.warn(
            "No expected bus bandwidth for %s x%d (%s): only wrong values and socket fallback are judged; "
            "set expected_busbw_gbps or expected_table" % (model, gpus, link)
        )
    # An explicit transport expectation replaces judge()'s coarser "NVLink but not P2P" rule.
    expected_transport, gid_index = transport_expectation(params)
    _passed, reasons, peak = nccl_tests.judge(
        parsed,
        debug,
        expected,
        params["tolerance"],
        judge_min,
        label="%d GPUs" % gpus,
        link_type=None if expected_transport else link,
    )
    if expected_transport is not None:
        reasons.extend(
            nccl_log.judge_transport(debug["transport_parsed"], expected_transport, gid_index, params["expect_gdr"])[1]
        )
    pairs = []
    if params["pairwise"] and gpus > 2:
        pair_expected = nccl_tests.lookup_expected(model, 2, link, params["expected_table"])[0]
        for pair in nccl_tests.gpu_pairs(range(gpus)):
            pair_parsed, pair_debug, pair_seconds = sweep(
                module, tool, path, 2, max(judge_min, min_bytes), max_bytes, visible=pair
            )
            seconds += pair_seconds
            ok, why, pair_peak = nccl_tests.judge(
                pair_parsed,
                pair_debug,
                pair_expected,
                params["tolerance"],
                judge_min,
                label="GPU pair %d-%d" % tuple(pair),
                link_type=link,
            )
            pairs.append(
                {
                    "gpus": pair,
                    "peak_busbw_gbps": pair_peak,
                    "expected_busbw_gbps": pair_expected,
                    "passed": ok,
                    "reasons": why,
                }
            )
            reasons.extend(why)
    return {
        "results": parsed["rows"],
        "peak_busbw_gbps": round(peak, 2),
        "expected_busbw_gbps": expected,
        "expected_source": source,
        "passed": not reasons,
        "reasons": reasons,
        "tool": tool,
        "duration_s": round(seconds, 1),
        "nccl": {key: value for key, value in debug.items() if key != "transport_parsed"},
        "transports": debug["transport"],
        "expected_transport": expected_transport,
        "gpu_model": model,
        "gpu_count": gpus,
        "link_type": link,
        "pairs": pairs,
    }


def main():
    module = AnsibleModule(
        argument_spec=dict(
            tool=dict(type="str", default="auto", choices=["auto", "nccl-tests", "torch"]),
            all_reduce_perf_path=dict(type="str", default="all_reduce_perf"),
            torch_python=dict(type="str", default="python3"),
            nvidia_smi_path=dict(type="str", default="nvidia-smi"),
            gpus=dict(type="int"),
            gpu_model=dict(type="str"),
            link_type=dict(type="str", choices=["nvlink", "pcie", "mixed"]),
            min_bytes=dict(type="str", default="8"),
            max_bytes=dict(type="str", default="4G"),
            step_factor=dict(type="int", default=2),
            iters=dict(type="int", default=20),
            warmup_iters=dict(type="int", default=5),
            nccl_env=dict(type="dict", default={}),
            expected_busbw_gbps=dict(type="float"),
            expected_table=dict(type="list", elements="dict", default=[]),
            tolerance=dict(type="float", default=0.1),
            judge_min_bytes=dict(type="str", default="1G"),
            pairwise=dict(type="bool", default=False),
            timeout=dict(type="int", default=900),
            nccl_log=dict(type="str"),
            expected_transport=dict(type="str", choices=list(nccl_log.EXPECTED_TRANSPORTS)),
            rdma_facts=dict(type="dict"),
            expect_gdr=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    params = module.params
    for name in ("step_factor", "iters", "timeout"):
        if params[name] < 1 or (name == "step_factor" and params[name] < 2):
            module.fail_json(
                msg="%s must be at least %d, got %d" % (name, 2 if name == "step_factor" else 1, params[name]),
                reasons=[],
            )
    if params["warmup_iters"] < 0 or (params["gpus"] is not None and params["gpus"] < 2):
        module.fail_json(msg="warmup_iters must be >= 0 and gpus >= 2", reasons=[])
    try:
        if params["nccl_log"] is not None:
            result = judge_log(module)
            if not result["passed"]:
                module.fail_json(
                    msg="NCCL transport check failed: " + "; ".join(result["reasons"]), changed=False, **result
                )
            module.exit_json(
                changed=False,
                msg="NCCL channels use %s as expected (%s)"
                % (
                    result["expected_transport"],
                    ", ".join("%s=%d" % kv for kv in sorted(result["transports"]["summary"].items())),
                ),
                **result,
            )
        result = check(module)
    except LlmopsError as exc:
        module.fail_json(msg=exc.message, reasons=[exc.message])
    if not result["passed"]:
        module.fail_json(msg="NCCL all-reduce check failed: " + "; ".join(result["reasons"]), changed=False, **result)
    module.exit_json(
        changed=False,
        msg="peak busbw %.1f GB/s (%s, %d GPUs)" % (result["peak_busbw_gbps"], result["tool"], result["gpu_count"]),
        **result,
    )


if __name__ == "__main__":
    main()
