# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The serving pre-flight: an all-reduce across exactly the pods the engine group will use, before it exists.

A 671B group that cannot talk over its fabric loads 40 minutes of weights and then hangs, or serves at a
tenth of its speed over TCP. The pre-flight runs the collective first, in pods built by the same code as the
engine pods (serving.pod_spec: image, node selection, accelerators, rdma/* resources, NCCL env, network
mode, security context), as an Indexed Job of `plan.nodes` pods behind a headless Service: pod 0 is the
rendezvous (`<job>-0.<service>`), each pod runs nccl_torch_sweep.py with its completion index as node rank.
The logs of every pod are judged by the code nccl_check uses: the bus bandwidth table (rank 0) and the
transport of every channel (nccl_log), so NET/Socket between nodes stops the serve stage by name.
A plan whose expert parallelism spans nodes also runs an all-to-all (the MoE dispatch/combine pattern, which a
rail-only fabric cannot carry between rails), judged the same way with its own floor.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import hashlib

from ansible_collections.llmops.inference.plugins.module_utils import nccl_log, nccl_tests, nccl_torch_sweep, serving
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

SCRIPT_KEY = "nccl_torch_sweep.py"
SCRIPT_MOUNT = "/llmops-preflight"
COMPONENT = "nccl-preflight"
# The collective library and device of each accelerator vendor (backend/device "auto"): the engine's own.
VENDOR_BACKENDS = {"nvidia": ("nccl", "cuda"), "huawei": ("hccl", "npu")}
DEFAULTS = {
    "backend": "auto",
    "device": "auto",
    "min_bytes": "1M",
    "max_bytes": "1G",
    "iters": 10,
    "warmup": 3,
    "port": 29555,
    "python": "python3",
    "timeout_seconds": 900,
    "expected_transport": "",
    "min_busbw_gbps": None,
    "expect_gdr": False,
    # auto: all_reduce, plus all_to_all when expert parallelism spans nodes
    "collectives": "auto",
    "min_all_to_all_busbw_gbps": None,
    # empty: the engine's image (what decides whether the fabric works is the engine's own libraries)
    "image": "",
}


def settings(preflight):
    """The pre-flight settings with defaults; LlmopsError on a value that cannot work."""
    merged = dict(DEFAULTS)
    merged.update({key: value for key, value in (preflight or {}).items() if value is not None and value != ""})
    if merged["backend"] not in ("auto",) + tuple(nccl_torch_sweep.BACKENDS):
        raise LlmopsError(
            "preflight backend must be auto, %s, got %r" % (", ".join(nccl_torch_sweep.BACKENDS), merged["backend"])
        )
    pair = (merged["backend"], merged["device"])
    if merged["device"] not in ("auto",) + tuple(nccl_torch_sweep.BACKENDS.values()) or (
        "auto" not in pair and nccl_torch_sweep.BACKENDS[pair[0]] != pair[1]
    ):
        raise LlmopsError(
            "preflight device must be auto or match the backend: nccl with cuda, hccl with npu, gloo with cpu "
            "(the stand-in without accelerators); got %s with %s" % pair
        )
    if merged["expected_transport"] and merged["expected_transport"] not in nccl_log.EXPECTED_TRANSPORTS:
        raise LlmopsError(
            "preflight expected_transport must be one of %s or empty, got %r"
            % (", ".join(nccl_log.EXPECTED_TRANSPORTS), merged["expected_transport"])
        )
    merged["min_bytes"] = nccl_tests.parse_size(str(merged["min_bytes"]))
    merged["max_bytes"] = nccl_tests.parse_size(str(merged["max_bytes"]))
    if merged["min_bytes"] > merged["max_bytes"]:
        raise LlmopsError("preflight min_bytes is larger than max_bytes")
    collectives = merged["collectives"]
    if isinstance(collectives, str) and collectives != "auto":
        collectives = [c.strip() for c in collectives.split(",") if c.strip()]
    if collectives != "auto" and (
        not collectives or any(c not in nccl_torch_sweep.OPS for c in collectives) or "all_reduce" not in collectives
    ):
        raise LlmopsError(
            "preflight collectives must be auto or a list of %s that includes all_reduce, got %r"
            % (", ".join(nccl_torch_sweep.OPS), merged["collectives"])
        )
    merged["collectives"] = collectives
    for key in ("iters", "port", "timeout_seconds"):
        if int(merged[key]) < 1 or (key == "port" and int(merged[key]) > 65535):
            raise LlmopsError("preflight %s is out of range: %r" % (key, merged[key]))
    return merged


def resolve_backend(pre, vendor):
    """The settings with backend/device "auto" resolved for the accelerator vendor (nccl/cuda, hccl/npu)."""
    backend, device = VENDOR_BACKENDS.get(vendor, VENDOR_BACKENDS["nvidia"])
    resolved = dict(pre)
    if resolved["backend"] == "auto":
        resolved["backend"] = backend if resolved["device"] in ("auto", device) else "gloo"
    if resolved["device"] == "auto":
        resolved["device"] = nccl_torch_sweep.BACKENDS[resolved["backend"]]
    return resolved


def names(config):
    base = "%s-%s" % (config["name"], COMPONENT)
    return {"job": base, "service": base, "configmap": base + "-script"}


def collectives(plan, pre):
    """The collectives the pre-flight runs: all-reduce always; all-to-all when expert parallelism spans nodes
    (every rank then exchanges tokens with ranks on other nodes), unless set explicitly."""
    if pre["collectives"] != "auto":
        return [op for op in nccl_torch_sweep.OPS if op in pre["collectives"]]
    spans_nodes = int(plan.get("expert_parallel") or 1) > serving.accelerators_per_pod(plan)
    return ["all_reduce", "all_to_all"] if spans_nodes else ["all_reduce"]


def sweep_command(config, plan, pre):
    """The shell line each pod runs: node rank from the Indexed Job's completion index."""
    svc = names(config)
    master = "%s-0.%s" % (svc["job"], svc["service"])
    argv = [
        pre["python"],
        "%s/%s" % (SCRIPT_MOUNT, SCRIPT_KEY),
        "--gpus",
        str(serving.accelerators_per_pod(plan)),
        "--nodes",
        str(int(plan["nodes"])),
        "--node-rank",
        '"$JOB_COMPLETION_INDEX"',
        "--master-addr",
        master,
        "--master-port",
        str(int(pre["port"])),
        "--backend",
        pre["backend"],
        "--device",
        pre["device"],
        "--min-bytes",
        str(pre["min_bytes"]),
        "--max-bytes",
        str(pre["max_bytes"]),
        "--iters",
        str(int(pre["iters"])),
        "--warmup",
        str(int(pre["warmup"])),
        "--ops",
        ",".join(collectives(plan, pre)),
    ]
    # every token but the index is a plain word or number: no quoting games
    return " ".join(argv)


def preflight_manifests(config, plan, cache, preflight=None):
    """[ConfigMap (the sweep script), headless Service, Indexed Job] for a multi-node plan; [] for one node."""
    serving.validate_plan(plan)
    if int(plan["nodes"]) < 2:
        return []
    config = serving.validate_config(serving.resolve_accelerator(config, plan))
    pre = resolve_backend(settings(preflight), config["accelerator_vendor"])
    svc = names(config)
    labels = {
        "app.kubernetes.io/name": config["name"],
        "app.kubernetes.io/component": COMPONENT,
        "app.kubernetes.io/managed-by": "llmops.inference",
    }
    source = nccl_torch_sweep.script_source()
    # The engine pod spec of a worker: same image, placement, resources, NCCL env, network mode, hardening.
    spec = copy.deepcopy(serving.pod_spec(config, plan, cache, "worker"))
    spec.pop("initContainers", None)  # the pre-flight needs no model: do not wait for the cache
    spec["restartPolicy"] = "Never"
    spec["subdomain"] = svc["service"]
    spec["volumes"] = [v for v in spec["volumes"] if v["name"] != "model-cache"] + [
        {"name": "preflight-script", "configMap": {"name": svc["configmap"], "defaultMode": 0o555}}
    ]
    container = spec["containers"][0]
    container["name"] = "nccl-preflight"
    if pre["image"]:
        container["image"] = pre["image"]
    container["command"] = ["/bin/sh", "-c", "exec " + sweep_command(config, plan, pre)]
    container["env"] = [e for e in container.get("env", []) if e.get("name") != "NCCL_DEBUG"] + [
        {"name": "NCCL_DEBUG", "value": "INFO"},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]
    container["volumeMounts"] = [m for m in container["volumeMounts"] if m["name"] != "model-cache"] + [
        {"name": "preflight-script", "mountPath": SCRIPT_MOUNT, "readOnly": True}
    ]
    container["ports"] = [{"name": "rendezvous", "containerPort": int(pre["port"]), "protocol": "TCP"}]
    for key in ("startupProbe", "readinessProbe", "livenessProbe", "lifecycle"):
        container.pop(key, None)
    spec["terminationGracePeriodSeconds"] = 10
    # One pod per node, like the engine group (the engine's anti-affinity selects engine pods only).
    spec.setdefault("affinity", {})["podAntiAffinity"] = {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": labels}, "topologyKey": "kubernetes.io/hostname"}
        ]
    }
    digest = hashlib.sha256((source + repr(spec)).encode("utf-8")).hexdigest()[:10]
    meta = {"namespace": config["namespace"], "labels": dict(labels)}
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": dict(meta, name=svc["configmap"]),
            "data": {SCRIPT_KEY: source},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": dict(meta, name=svc["service"]),
            "spec": {
                "clusterIP": "None",
                "selector": labels,
                # rank 0 must resolve before it is Ready (it never becomes Ready: no probe)
                "publishNotReadyAddresses": True,
                "ports": [{"name": "rendezvous", "port": int(pre["port"]), "targetPort": int(pre["port"])}],
            },
        },
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": dict(meta, name=svc["job"], annotations={"llmops.io/preflight-spec": digest}),
            "spec": {
                "completionMode": "Indexed",
                "completions": int(plan["nodes"]),
                "parallelism": int(plan["nodes"]),
                "backoffLimit": 0,
                "activeDeadlineSeconds": int(pre["timeout_seconds"]),
                "ttlSecondsAfterFinished": 86400,
                "template": {"metadata": {"labels": dict(labels)}, "spec": spec},
            },
        },
    ]


def judge_logs(logs_by_pod, preflight=None, rdma_facts=None):
    """Judge the pre-flight from the logs of every pod (pod name -> text; pod index 0 prints the tables).

    Returns passed, reasons, peak_busbw_gbps (all-reduce), peaks (per collective), transports
    (nccl_log.transport_report), expected_transport and table (rows for printing: collective, size, busbw
    out-of-place / in-place, wrong).
    """
    pre = settings(preflight)
    if not isinstance(logs_by_pod, dict) or not logs_by_pod:
        raise LlmopsError("the pre-flight produced no pod logs to judge")
    reasons = []
    texts = [logs_by_pod[name] or "" for name in sorted(logs_by_pod)]
    table_text = next((text for text in texts if "# Avg bus bandwidth" in text or "nccl_torch_sweep" in text), None)
    peaks = {}
    rows = []
    if table_text is None:
        reasons.append("no pod printed the all-reduce table (rank 0 failed): %s" % _last_lines(texts))
    else:
        floors = {"all_reduce": pre["min_busbw_gbps"], "all_to_all": pre["min_all_to_all_busbw_gbps"]}
        for op, text in nccl_tests.split_sweeps(table_text):
            try:
                parsed = nccl_tests.parse_all_reduce_perf(text)
            except LlmopsError as exc:
                reasons.append("%s: %s" % (_label(op), exc.message))
                continue
            peak = nccl_tests.peak_busbw(parsed, min(pre["max_bytes"], nccl_tests.DEFAULT_JUDGE_MIN_BYTES))
            peaks[op] = round(peak, 2)
            for row in parsed["rows"]:
                wrong = (row["out_of_place"]["wrong"] or 0) + (row["in_place"]["wrong"] or 0)
                rows.append(
                    {
                        "collective": op,
                        "size_bytes": row["size_bytes"],
                        "busbw_out_of_place_gbps": row["out_of_place"]["busbw_gbps"],
                        "busbw_in_place_gbps": row["in_place"]["busbw_gbps"],
                        "wrong": wrong,
                    }
                )
                if wrong:
                    reasons.append("%s: %d wrong values at %d bytes" % (_label(op), wrong, row["size_bytes"]))
            if floors.get(op) is not None and peak < float(floors[op]):
                reasons.append(
                    "%s: peak bus bandwidth %.2f GB/s is below the required %.2f GB/s"
                    % (_label(op), peak, float(floors[op]))
                )
        ran = set(peaks) | {row["collective"] for row in rows}
        for op in pre["collectives"] if pre["collectives"] != "auto" else ():
            if op not in ran and not any(r.startswith(_label(op)) for r in reasons):
                reasons.append("%s: no table was printed (the sweep stopped before it)" % _label(op))
    expected, gid_index = pre["expected_transport"] or None, None
    if rdma_facts:
        derived, gid_index = nccl_log.expected_from_rdma(rdma_facts)
        expected = expected or derived
    parsed_log = nccl_log.parse_nccl_log("\n".join(texts))
    backend = pre["backend"]
    if backend == "auto":
        # what ran says which library moved the data (the sweep's header); older outputs name none: NCCL
        backend = nccl_tests.sweep_backend(table_text or "") or "nccl"
    if backend == "hccl":
        pass  # HCCL prints no NCCL channel lines; the NPUs' links are hccl_check's (stage 1)
    elif expected and backend == "nccl":
        reasons.extend(nccl_log.judge_transport(parsed_log, expected, gid_index, pre["expect_gdr"])[1])
    elif expected and expected != "socket" and backend == "gloo":
        # gloo always moves its data over TCP sockets: such a run proves the rendezvous, not the fabric
        reasons.append(
            "the collective ran with gloo over TCP sockets, not %s: the engine's NCCL would use the fabric, which this "
            "run did not test (backend nccl runs it)" % nccl_log.transport_words(expected)
        )
    return {
        "passed": not reasons,
        "reasons": reasons,
        "peak_busbw_gbps": peaks.get("all_reduce"),
        "peaks": peaks,
        "transports": nccl_log.transport_report(parsed_log),
        "expected_transport": expected,
        "table": rows,
    }


def _label(op):
    return op.replace("_", "-")


def _last_lines(texts, count=5):
    lines = [line for text in texts for line in text.splitlines() if line.strip()]
    return " | ".join(lines[-count:]) or "(no output)"


def report_lines(result):
    """What the play prints: one line per size, then the transports and the verdict."""
    lines = [
        "%-10s  %14s  %18s  %18s  %6s" % ("collective", "size (B)", "busbw oop (GB/s)", "busbw ip (GB/s)", "wrong")
    ]
    for row in result["table"]:
        lines.append(
            "%-10s  %14d  %18s  %18s  %6d"
            % (
                _label(row.get("collective", "all_reduce")),
                row["size_bytes"],
                _gbps(row["busbw_out_of_place_gbps"]),
                _gbps(row["busbw_in_place_gbps"]),
                row["wrong"],
            )
        )
    transports = result["transports"]
    lines.append(
        "channels inside nodes: %s; between nodes: %s; HCAs: %s; GID index: %s; GPUDirect RDMA: %s"
        % (
            ", ".join(transports["intra_node"]) or "-",
            ", ".join(transports["inter_node"]) or "-",
            ", ".join(transports["hcas"]) or "-",
            transports["gid_index"] if transports["gid_index"] is not None else "-",
            {True: "yes", False: "no", None: "-"}[transports["gdr"]],
        )
    )
    peaks = result.get("peaks") or {"all_reduce": result["peak_busbw_gbps"]}
    lines.append(
        "PASSED: peak " + ", ".join("%s %s GB/s" % (_label(op), peak) for op, peak in sorted(peaks.items()))
        if result["passed"]
        else "FAILED: " + "; ".join(result["reasons"])
    )
    return lines


def _gbps(value):
    return "N/A" if value is None else "%.2f" % value
