# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Day-two logic of playbooks/status.yml, upgrade.yml and uninstall.yml (docs/day_two.md).

Pure functions over Kubernetes objects as k8s_info returns them (dicts), so every decision is tested
without a cluster:
- the status table: add-ons (Helm release and workloads), the serving group (pods Ready, restarts, image,
  engine version), the plan against the pod spec and argv, the endpoint's answer, the engine's key metrics;
- the upgrade: what changes between the running workload and the one built now, how many whole groups the
  cluster's spare capacity holds (allocatable minus what the pods on each eligible node request), and the
  rolling update's maxSurge/maxUnavailable from it, refused when the cluster cannot hold the surge;
- the uninstall: the objects of a server in reverse apply order, the model cache kept unless asked, and the
  CRDs a Helm uninstall would delete kept when custom resources still use them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import gzip
import json
import math
import re

from ansible_collections.llmops.inference.plugins.module_utils import engine_cli
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

NAME_LABEL = "app.kubernetes.io/name"
COMPONENT_LABEL = "app.kubernetes.io/component"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "llmops.inference"
KEEP_POLICY = "helm.sh/resource-policy"

# --- quantities --------------------------------------------------------------------------------------

_SUFFIXES = {
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
_QUANTITY_RE = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$")


def quantity(value):
    """A Kubernetes quantity ('250m', '2Gi', '8', 1.5) as a number; raises LlmopsError on anything else."""
    if isinstance(value, bool):
        raise LlmopsError("%r is not a Kubernetes quantity" % (value,))
    if isinstance(value, (int, float)):
        return float(value)
    match = _QUANTITY_RE.match(str(value or "").strip())
    if not match:
        raise LlmopsError("%r is not a Kubernetes quantity (such as 250m, 2Gi, 8)" % (value,))
    return float(match.group(1)) * _SUFFIXES.get(match.group(2) or "", 1)


# --- reading workloads and pods ----------------------------------------------------------------------


def _dict(value):
    return value if isinstance(value, dict) else {}


def _list(value):
    return value if isinstance(value, list) else []


def pod_templates(workload):
    """[(role, pod template)] of a LeaderWorkerSet (leader, worker), Deployment or StatefulSet (single)."""
    spec = _dict(_dict(workload).get("spec"))
    if _dict(workload).get("kind") == "LeaderWorkerSet":
        lwt = _dict(spec.get("leaderWorkerTemplate"))
        found = []
        if lwt.get("leaderTemplate"):
            found.append(("leader", _dict(lwt["leaderTemplate"])))
        found.append(("worker", _dict(lwt.get("workerTemplate"))))
        return found
    return [("single", _dict(spec.get("template")))]


def engine_container(pod_spec):
    """The engine container of a pod spec (named ``engine``, else the first)."""
    containers = _list(_dict(pod_spec).get("containers"))
    for container in containers:
        if _dict(container).get("name") == "engine":
            return container
    return _dict(containers[0]) if containers else {}


def _container_argv(container):
    command = [str(part) for part in _list(container.get("command")) + _list(container.get("args"))]
    return engine_cli.command_argv(command) if command else None


# Flag spellings of each engine (SGLang's and vLLM's CLIs, as engine_cli's recorded schemas spell them).
_PARALLEL_FLAGS = {
    "tensor_parallel": ("--tp-size", "--tp", "--tensor-parallel-size", "-tp"),
    "pipeline_parallel": ("--pp-size", "--pipeline-parallel-size", "-pp"),
    "data_parallel": ("--dp-size", "--dp", "--data-parallel-size", "-dp"),
    "expert_parallel": ("--ep-size", "--ep", "--expert-parallel-size"),
    "nnodes": ("--nnodes",),
}


def parallelism_from_argv(argv):
    """{tensor_parallel, pipeline_parallel, data_parallel, expert_parallel, nnodes} an engine argv asks for
    (1 when a flag is absent; the raw text when it is not a number, e.g. ``$(LWS_GROUP_SIZE)``)."""
    flags = engine_cli.engine_flags(argv or [])
    found = {}
    for key, spellings in _PARALLEL_FLAGS.items():
        value = None
        for index, arg in enumerate(flags):
            if arg in spellings and index + 1 < len(flags):
                value = flags[index + 1]
            elif any(arg.startswith(spelling + "=") for spelling in spellings):
                value = arg.split("=", 1)[1]
        try:
            found[key] = int(value) if value is not None else 1
        except ValueError:
            found[key] = value
    return found


def _ready(pod):
    conditions = _list(_dict(_dict(pod).get("status")).get("conditions"))
    return any(_dict(c).get("type") == "Ready" and _dict(c).get("status") == "True" for c in conditions)


def _restarts(pod):
    statuses = _list(_dict(_dict(pod).get("status")).get("containerStatuses"))
    return sum(int(_dict(s).get("restartCount") or 0) for s in statuses)


def _terminal(pod):
    return _dict(_dict(pod).get("status")).get("phase") in ("Succeeded", "Failed")


def workload_summary(workload, pods=None, accelerator_resource=""):
    """What runs: kind, name, images, engine and its version (from the image tag, engine_cli.image_version),
    replicas (groups) and how many are ready/updated, group size, accelerators per pod, the engine argv's
    parallelism, the rollout strategy, and the engine pods (Ready, restarts, node, image)."""
    workload = _dict(workload)
    if not workload:
        return {"exists": False, "pods": [], "pods_ready": 0, "pods_total": 0, "restarts": 0}
    spec = _dict(workload.get("spec"))
    status = _dict(workload.get("status"))
    templates = pod_templates(workload)
    images = []
    argv = None
    accelerators = None
    for role, template in templates:
        container = engine_container(_dict(template.get("spec")))
        if container.get("image") and container["image"] not in images:
            images.append(container["image"])
        if role in ("leader", "single") or argv is None:
            argv = _container_argv(container) or argv
        limits = _dict(_dict(container.get("resources")).get("limits"))
        # Empty: the accelerator vendors' device plugin resources (nvidia.com/gpu, huawei.com/Ascend910).
        names = (
            [accelerator_resource]
            if accelerator_resource
            else sorted(name for name in limits if name.startswith(("nvidia.com/", "huawei.com/")))
        )
        if names and names[0] in limits and accelerators is None:
            accelerators = int(quantity(limits[names[0]]))
    engine, version = engine_cli.image_version(images[0]) if images else (None, None)
    kind = workload.get("kind")
    group_size = int(_dict(spec.get("leaderWorkerTemplate")).get("size") or 1) if kind == "LeaderWorkerSet" else 1
    rollout = _dict(spec.get("rolloutStrategy")) if kind == "LeaderWorkerSet" else _dict(spec.get("strategy"))
    rolling = _dict(rollout.get("rollingUpdateConfiguration") or rollout.get("rollingUpdate"))
    live = [pod for pod in _list(pods) if not _dict(pod.get("metadata")).get("deletionTimestamp")]
    pod_rows = []
    for pod in sorted(live, key=lambda p: _dict(p.get("metadata")).get("name", "")):
        container = engine_container(_dict(pod.get("spec")))
        pod_rows.append(
            {
                "name": _dict(pod.get("metadata")).get("name", "?"),
                "node": _dict(pod.get("spec")).get("nodeName") or "-",
                "phase": _dict(pod.get("status")).get("phase") or "?",
                "ready": _ready(pod),
                "restarts": _restarts(pod),
                "image": container.get("image", "?"),
            }
        )
    replicas = int(spec.get("replicas") if spec.get("replicas") is not None else 1)
    return {
        "exists": True,
        "kind": kind,
        "name": _dict(workload.get("metadata")).get("name"),
        "images": images,
        "engine": engine,
        "engine_version": version,
        "replicas": replicas,
        "ready_replicas": int(status.get("readyReplicas") or 0),
        "updated_replicas": int(status.get("updatedReplicas") or 0),
        "group_size": group_size,
        "accelerators_per_pod": accelerators,
        "argv_parallelism": parallelism_from_argv(argv) if argv else {},
        "rollout": {"max_surge": rolling.get("maxSurge"), "max_unavailable": rolling.get("maxUnavailable")},
        "pods": pod_rows,
        "pods_ready": sum(1 for row in pod_rows if row["ready"]),
        "pods_total": len(pod_rows),
        "restarts": sum(row["restarts"] for row in pod_rows),
    }


def plan_vs_running(plan, summary, replicas=None):
    """Rows {what, plan, running, ok} comparing llmops_plan (and the wanted replicas) with what runs."""
    plan = _dict(plan)
    summary = _dict(summary)
    if not summary.get("exists"):
        return [{"what": "workload", "plan": "present", "running": "absent", "ok": False}]
    argv = _dict(summary.get("argv_parallelism"))
    rows = [
        ("nodes per group", plan.get("nodes"), summary.get("group_size")),
        ("accelerators per pod", plan.get("accelerators_per_node"), summary.get("accelerators_per_pod")),
        ("tensor parallel", plan.get("tensor_parallel"), argv.get("tensor_parallel")),
        ("pipeline parallel", plan.get("pipeline_parallel", 1), argv.get("pipeline_parallel")),
    ]
    if summary.get("engine") == "sglang" and int(plan.get("nodes") or 1) > 1:
        # The argv names the group size through LWS's variable; the LWS size is what it expands to.
        nnodes = argv.get("nnodes")
        rows.append(
            (
                "engine --nnodes",
                plan.get("nodes"),
                summary.get("group_size") if nnodes == "$(LWS_GROUP_SIZE)" else nnodes,
            )
        )
    if replicas is not None:
        rows.append(("replicas (groups)", int(replicas), summary.get("replicas")))
    result = []
    for what, planned, running in rows:
        if planned is None:
            continue
        result.append({"what": what, "plan": planned, "running": running, "ok": str(planned) == str(running)})
    return result


# --- engine metrics ----------------------------------------------------------------------------------

# Key metrics per engine (the names the engines export; docs/day_two.md): (label, metric names tried in order).
KEY_METRICS = {
    "sglang": (
        ("requests running", ("sglang:num_running_reqs",)),
        ("requests waiting", ("sglang:num_queue_reqs",)),
        ("KV cache usage", ("sglang:token_usage",)),
        ("generation tokens/s", ("sglang:gen_throughput",)),
        ("prompt tokens total", ("sglang:prompt_tokens_total",)),
        ("generation tokens total", ("sglang:generation_tokens_total",)),
    ),
    "vllm": (
        ("requests running", ("vllm:num_requests_running",)),
        ("requests waiting", ("vllm:num_requests_waiting",)),
        # vLLM renamed gpu_cache_usage_perc to kv_cache_usage_perc (0.10); the newer name first.
        ("KV cache usage", ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")),
        ("prompt tokens total", ("vllm:prompt_tokens_total",)),
        ("generation tokens total", ("vllm:generation_tokens_total",)),
    ),
}

_SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(?:\s+\d+)?$")


def parse_metrics(text):
    """{metric name: value summed over its label sets} of a Prometheus text exposition."""
    found = {}
    for line in str(text or "").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE_RE.match(line)
        if not match:
            continue
        try:
            value = float(match.group(3))
        except ValueError:
            continue
        if math.isnan(value):
            continue
        found[match.group(1)] = found.get(match.group(1), 0.0) + value
    return found


def key_metrics(text, engine):
    """[(label, value)] of the engine's key metrics found in a /metrics answer (absent ones left out)."""
    values = parse_metrics(text)
    rows = []
    for label, names in KEY_METRICS.get(engine or "", ()):
        for name in names:
            if name in values:
                value = values[name]
                rows.append((label, int(value) if value == int(value) and "usage" not in label else round(value, 4)))
                break
    return rows


# --- add-ons -----------------------------------------------------------------------------------------


def helm_release(secrets):
    """The deployed revision of a Helm release from its storage Secrets (``sh.helm.release.v1.<name>.v<N>``,
    k8s_info's resources): {name, revision, status, chart, chart_version, app_version}; {} when none.

    The Secret's ``release`` key holds base64(gzip(JSON)) and the API base64-encodes Secret data once more.
    """
    best = None
    for secret in _list(secrets):
        labels = _dict(_dict(_dict(secret).get("metadata")).get("labels"))
        if labels.get("owner") != "helm":
            continue
        try:
            revision = int(labels.get("version") or 0)
        except ValueError:
            continue
        if best is None or revision > best[0]:
            best = (revision, secret, labels)
    if best is None:
        return {}
    revision, secret, labels = best
    info = {"name": labels.get("name"), "revision": revision, "status": labels.get("status") or "?"}
    raw = _dict(secret.get("data")).get("release")
    if raw:
        try:
            payload = base64.b64decode(base64.b64decode(raw))
            if payload[:2] == b"\x1f\x8b":
                payload = gzip.decompress(payload)
            metadata = _dict(_dict(json.loads(payload.decode("utf-8")).get("chart")).get("metadata"))
        except (binascii.Error, OSError, ValueError, UnicodeDecodeError) as error:
            raise LlmopsError("the Helm release Secret %s cannot be read: %s" % (labels.get("name"), error))
        info.update(
            chart=metadata.get("name"), chart_version=metadata.get("version"), app_version=metadata.get("appVersion")
        )
    return info


def _workload_health(workload):
    status = _dict(_dict(workload).get("status"))
    if _dict(workload).get("kind") == "DaemonSet":
        return int(status.get("numberReady") or 0), int(status.get("desiredNumberScheduled") or 0)
    want = _dict(_dict(workload).get("spec")).get("replicas")
    return int(status.get("readyReplicas") or 0), int(1 if want is None else want)


def _image_tag(image):
    image = str(image or "").split("@", 1)[0]
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else ""


def addon_row(name, target_version, release_secrets, workloads, release_name="", managed=True):
    """One status row of an add-on: {component, version, target, health, ok, detail}.

    The version is the Helm release's app version (else the first workload's image tag); health counts the
    release's Deployments/DaemonSets that are ready: those carrying its release label or annotation, or named
    ``release_name`` (an add-on of plain manifests), else those named ``<release_name>-*`` (installed without
    Helm); every workload given when ``release_name`` is empty.
    """
    release = helm_release(release_secrets)
    mine = [
        w
        for w in _list(workloads)
        if not release_name
        or release_name
        in (
            _dict(_dict(w.get("metadata")).get("labels")).get("app.kubernetes.io/instance"),
            _dict(_dict(w.get("metadata")).get("annotations")).get("meta.helm.sh/release-name"),
            _dict(w.get("metadata")).get("name"),
        )
    ]
    if release_name and not mine:
        # Installed another way (plain manifests, a test bed): the charts name their workloads <release>-<part>.
        mine = [
            w for w in _list(workloads) if str(_dict(w.get("metadata")).get("name", "")).startswith(release_name + "-")
        ]
    counts = [_workload_health(w) for w in mine]
    ready = sum(1 for have, want in counts if have >= want and want > 0)
    version = release.get("app_version") or ""
    if not version and mine:
        version = _image_tag(
            engine_container(_dict(_dict(_dict(mine[0].get("spec")).get("template")).get("spec"))).get("image")
        )
    installed = bool(release) or bool(mine)
    detail = []
    if release:
        detail.append(
            "helm %s rev %s %s" % (release.get("chart_version") or "?", release["revision"], release["status"])
        )
    detail += ["%s %d/%d" % (_dict(w.get("metadata")).get("name"), h, t) for w, (h, t) in zip(mine, counts)]
    ok = installed and ready == len(mine) and (not release or release["status"] == "deployed")
    health = "%d/%d ready" % (ready, len(mine)) if mine else ("not installed" if not installed else "no workloads")
    if not managed and not installed:
        # Shown because the serving group needs it, run some other way (e.g. outside the cluster): not judged.
        ok, health = None, "not found"
        detail = ["no Helm release or workload here; not managed by this inventory"]
    if release and release["status"] != "deployed":
        health += ", Helm release %s" % release["status"]
    return {
        "component": name,
        "version": version or ("-" if not installed else "?"),
        "target": target_version or "",
        "health": health,
        "ok": ok,
        "detail": "; ".join(detail),
    }


def addon_change(row):
    """One line of the upgrade plan for an add-on row: what runs, what the inventory pins, what happens."""
    row = _dict(row)
    version, target = row.get("version") or "-", row.get("target") or ""
    if version in ("-", "?"):
        action = "installed at %s" % target if target else "installed"
    elif not target or target == version:
        action = "unchanged"
    else:
        action = "upgraded (or downgraded) to %s by its role" % target
    return "%s: runs %s, pinned %s: %s" % (row.get("component"), version, target or "-", action)


# --- the table ---------------------------------------------------------------------------------------


def _cell(value):
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    return str(value)


def format_table(header, rows):
    """Lines of a plain-text table (debug output keeps each line whole)."""
    cells = [[_cell(c) for c in header]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    for index, row in enumerate(cells):
        lines.append("  ".join(value.ljust(widths[i]) for i, value in enumerate(row)).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return lines


def status_report(addons, summary, plan, replicas=None, endpoint=None, metrics_text=None, mode="apply"):
    """The status table: {lines, healthy, problems, rows}.

    addons: addon_row results. summary: workload_summary of the serving group. plan: llmops_plan.
    endpoint: {queried, ok, models, answer, latency_s, version, error}. metrics_text: the /metrics answer.
    mode: ``render`` marks the serving columns as built, not running.
    """
    summary = _dict(summary)
    endpoint = _dict(endpoint)
    rows = []
    problems = []
    for addon in _list(addons):
        rows.append([addon["component"], addon["version"], addon["health"], addon["ok"], addon["detail"]])
        if addon["ok"] is False:
            problems.append("%s: %s" % (addon["component"], addon["health"]))
        elif addon["ok"] and addon.get("target") and addon["target"] != addon["version"]:
            problems.append(
                "%s runs %s, the inventory pins %s" % (addon["component"], addon["version"], addon["target"])
            )
    if summary.get("exists"):
        groups_ok = summary["ready_replicas"] >= summary["replicas"] and summary["pods_ready"] == summary["pods_total"]
        if mode == "render":
            health, groups_ok = "built (render mode: not applied)", True
        else:
            health = "%d/%d groups ready, pods %d/%d Ready, %d restarts" % (
                summary["ready_replicas"],
                summary["replicas"],
                summary["pods_ready"],
                summary["pods_total"],
                summary["restarts"],
            )
        rows.append(
            [
                "%s %s" % (summary["kind"], summary["name"]),
                "%s %s" % (summary.get("engine") or "?", summary.get("engine_version") or "?"),
                health,
                groups_ok,
                ", ".join(summary["images"]),
            ]
        )
        for pod in summary["pods"]:
            rows.append(
                [
                    "  pod %s" % pod["name"],
                    "",
                    "%s%s, %d restarts" % (pod["phase"], " Ready" if pod["ready"] else " not Ready", pod["restarts"]),
                    pod["ready"],
                    "on %s, %s" % (pod["node"], pod["image"]),
                ]
            )
        if not groups_ok:
            problems.append("the serving group is not Ready (%s)" % health)
    else:
        rows.append(["serving group", "-", "absent", False, "nothing deployed (playbooks/site.yml)"])
        problems.append("no serving workload")
    for check in plan_vs_running(plan, summary, replicas) if summary.get("exists") else []:
        rows.append(
            [
                "  plan: %s" % check["what"],
                "",
                "plan %s, %s %s" % (check["plan"], "built" if mode == "render" else "runs", check["running"]),
                check["ok"],
                "",
            ]
        )
        if not check["ok"]:
            problems.append("%s: the plan says %s, the pod spec %s" % (check["what"], check["plan"], check["running"]))
    if endpoint.get("queried"):
        if endpoint.get("ok"):
            detail = "models %s; answer in %ss: %s" % (
                ", ".join(endpoint.get("models") or []),
                endpoint.get("latency_s"),
                " ".join(str(endpoint.get("answer") or "").split())[:80],
            )
            # The engine's own version string's first word (the stand-in adds what it is after it).
            version = (str(endpoint.get("version") or "").split() or [""])[0]
            rows.append(["endpoint", version, "answers", True, detail])
        else:
            rows.append(["endpoint", "", "no answer", False, str(endpoint.get("error") or "")[:160]])
            problems.append("the endpoint does not answer: %s" % (endpoint.get("error") or "?"))
    else:
        rows.append(["endpoint", "", "not queried", None, str(endpoint.get("reason") or "")])
    if metrics_text:
        for label, value in key_metrics(metrics_text, summary.get("engine")):
            rows.append(["  metric: %s" % label, "", _cell(value), None, ""])
    lines = format_table(["component", "version", "health", "ok", "detail"], rows)
    return {"lines": lines, "healthy": not problems, "problems": problems, "rows": rows}


# --- upgrade: what changes, spare capacity, surge --------------------------------------------------


def _env_fingerprint(container):
    env = []
    for item in _list(container.get("env")):
        item = _dict(item)
        env.append((item.get("name"), item.get("value"), json.dumps(item.get("valueFrom"), sort_keys=True)))
    return sorted(env, key=lambda e: str(e[0]))


def _resources_fingerprint(container):
    resources = _dict(container.get("resources"))
    result = {}
    for part in ("limits", "requests"):
        for name, value in _dict(resources.get(part)).items():
            try:
                result["%s.%s" % (part, name)] = quantity(value)
            except LlmopsError:
                result["%s.%s" % (part, name)] = str(value)
    return result


def template_fingerprint(workload):
    """{role: {container: {image, argv, env, resources}}} of a workload's pod templates: the fields whose
    change rolls the pods (apiserver defaults, which the live object has and the built one lacks, left out)."""
    result = {}
    for role, template in pod_templates(workload):
        spec = _dict(template.get("spec"))
        containers = {}
        for kind in ("initContainers", "containers"):
            for container in _list(spec.get(kind)):
                container = _dict(container)
                containers["%s/%s" % (kind, container.get("name"))] = {
                    "image": container.get("image"),
                    "argv": [str(a) for a in _list(container.get("command")) + _list(container.get("args"))],
                    "env": _env_fingerprint(container),
                    "resources": _resources_fingerprint(container),
                }
        result[role] = containers
    return result


def workload_changes(live, built):
    """What differs between the running workload and the one built now, as lines a person reads
    (``image a -> b``); [] when applying the built one rolls nothing."""
    if not _dict(live):
        return [
            "%s %s does not exist yet: it is created"
            % (_dict(built).get("kind"), _dict(_dict(built).get("metadata")).get("name"))
        ]
    if _dict(live).get("kind") != _dict(built).get("kind"):
        return ["the workload kind changes from %s to %s" % (live.get("kind"), built.get("kind"))]
    old, new = template_fingerprint(live), template_fingerprint(built)
    changes = []
    for role in sorted(set(old) | set(new)):
        before, after = old.get(role, {}), new.get(role, {})
        for name in sorted(set(before) | set(after)):
            label = "%s %s" % (role, name.split("/", 1)[1])
            if name not in before:
                changes.append("%s: container added" % label)
                continue
            if name not in after:
                changes.append("%s: container removed" % label)
                continue
            for field in ("image", "argv", "env", "resources"):
                if before[name][field] != after[name][field]:
                    if field == "image":
                        changes.append("%s: image %s -> %s" % (label, before[name]["image"], after[name]["image"]))
                    else:
                        changes.append("%s: %s changed" % (label, field))
    live_size = _dict(_dict(live.get("spec")).get("leaderWorkerTemplate")).get("size")
    built_size = _dict(_dict(built.get("spec")).get("leaderWorkerTemplate")).get("size")
    if live_size != built_size:
        changes.append("group size %s -> %s" % (live_size, built_size))
    return changes


def _pod_requests(pod_spec):
    """Effective requests of a pod: the containers' sum, or the largest init container when larger
    (requests default to limits when only limits are set), plus the pod overhead."""
    pod_spec = _dict(pod_spec)

    def one(container):
        resources = _dict(_dict(container).get("resources"))
        merged = dict(_dict(resources.get("limits")))
        merged.update(_dict(resources.get("requests")))
        return {name: quantity(value) for name, value in merged.items()}

    total = {}
    for container in _list(pod_spec.get("containers")):
        for name, value in one(container).items():
            total[name] = total.get(name, 0.0) + value
    for container in _list(pod_spec.get("initContainers")):
        for name, value in one(container).items():
            total[name] = max(total.get(name, 0.0), value)
    for name, value in _dict(pod_spec.get("overhead")).items():
        total[name] = total.get(name, 0.0) + quantity(value)
    return total


def _tolerates(tolerations, taint):
    for toleration in _list(tolerations):
        toleration = _dict(toleration)
        if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
            continue
        if toleration.get("operator") == "Exists" and not toleration.get("key"):
            return True
        if toleration.get("key") != taint.get("key"):
            continue
        if toleration.get("operator") == "Exists" or toleration.get("value", "") == taint.get("value", ""):
            return True
    return False


def _expression_matches(labels, expression):
    key, operator = expression.get("key"), expression.get("operator")
    values = [str(v) for v in _list(expression.get("values"))]
    if operator == "In":
        return labels.get(key) in values
    if operator == "NotIn":
        return labels.get(key) not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    if operator in ("Gt", "Lt") and key in labels and values:
        try:
            have, bound = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return have > bound if operator == "Gt" else have < bound
    return False


def _node_fits(node, pod_spec):
    """Why a node cannot take the pod, or '' (Ready, schedulable, selector, required affinity, taints)."""
    metadata = _dict(node.get("metadata"))
    labels = _dict(metadata.get("labels"))
    spec = _dict(node.get("spec"))
    if spec.get("unschedulable"):
        return "cordoned"
    conditions = _list(_dict(node.get("status")).get("conditions"))
    if not any(_dict(c).get("type") == "Ready" and _dict(c).get("status") == "True" for c in conditions):
        return "not Ready"
    for key, value in _dict(pod_spec.get("nodeSelector")).items():
        if labels.get(key) != str(value):
            return "label %s is not %s" % (key, value)
    required = _dict(
        _dict(_dict(pod_spec.get("affinity")).get("nodeAffinity")).get("requiredDuringSchedulingIgnoredDuringExecution")
    )
    terms = _list(required.get("nodeSelectorTerms"))
    if terms and not any(
        all(_expression_matches(labels, _dict(e)) for e in _list(_dict(term).get("matchExpressions"))) for term in terms
    ):
        return "node affinity not met"
    for taint in _list(spec.get("taints")):
        taint = _dict(taint)
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerates(pod_spec.get("tolerations"), taint):
            return "taint %s=%s:%s not tolerated" % (taint.get("key"), taint.get("value", ""), taint.get("effect"))
    return ""


def _anti_affinity_selectors(pod_spec):
    """matchLabels of the required per-host pod anti-affinity terms (the builder's one engine pod per node)."""
    terms = _list(
        _dict(_dict(_dict(pod_spec).get("affinity")).get("podAntiAffinity")).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
    )
    return [
        _dict(_dict(term.get("labelSelector")).get("matchLabels"))
        for term in terms
        if _dict(term).get("topologyKey") == "kubernetes.io/hostname"
    ]


def spare_capacity(nodes, pods, workload):
    """How many more whole groups of ``workload`` (the one to apply) the cluster holds beside what runs now.

    A node is eligible when a pod of the group may go there (Ready, not cordoned, nodeSelector, required node
    affinity, taints); its free resources are its allocatable minus the requests of every pod bound to it that
    has not finished. A pod fits where every resource it requests is free; with the builder's per-host
    anti-affinity a node takes at most one engine pod and none where a pod of this server runs already (old
    groups keep running during a surge). Returns {groups, slots, group_size, per_pod, nodes: [lines]}.
    """
    templates = pod_templates(workload)
    if not templates or not _dict(templates[0][1]).get("spec"):
        raise LlmopsError("the workload to apply has no pod template: cannot size the surge")
    spec = _dict(templates[-1][1].get("spec"))
    per_pod = {}
    for _role, template in templates:
        for name, value in _pod_requests(_dict(template.get("spec"))).items():
            per_pod[name] = max(per_pod.get(name, 0.0), value)
    kind = _dict(workload).get("kind")
    group_size = (
        int(_dict(_dict(workload.get("spec")).get("leaderWorkerTemplate")).get("size") or 1)
        if kind == "LeaderWorkerSet"
        else 1
    )
    selectors = [s for s in _anti_affinity_selectors(spec) if s]
    used = {}
    blocked = set()
    for pod in _list(pods):
        pod = _dict(pod)
        node_name = _dict(pod.get("spec")).get("nodeName")
        if not node_name or _terminal(pod):
            continue
        for name, value in _pod_requests(pod.get("spec")).items():
            used.setdefault(node_name, {})[name] = used.get(node_name, {}).get(name, 0.0) + value
        labels = _dict(_dict(pod.get("metadata")).get("labels"))
        if any(all(labels.get(k) == str(v) for k, v in selector.items()) for selector in selectors):
            blocked.add(node_name)
    slots = 0
    lines = []
    for node in sorted(_list(nodes), key=lambda n: _dict(_dict(n).get("metadata")).get("name", "")):
        node = _dict(node)
        name = _dict(node.get("metadata")).get("name", "?")
        why = _node_fits(node, spec)
        if why:
            continue
        allocatable = _dict(_dict(node.get("status")).get("allocatable"))
        fit = None
        short = []
        for resource, need in sorted(per_pod.items()):
            if need <= 0:
                continue
            have = quantity(allocatable.get(resource, 0)) - used.get(name, {}).get(resource, 0.0)
            count = int(math.floor(have / need + 1e-9)) if have > 0 else 0
            if count == 0:
                short.append("%s %s free of %s" % (resource, _fmt(have, resource), _fmt(need, resource)))
            fit = count if fit is None else min(fit, count)
        fit = fit or 0
        if selectors and name in blocked:
            fit, short = 0, ["runs a pod of this server: one engine pod per node"]
        elif selectors:
            fit = min(fit, 1)
        slots += fit
        lines.append("%s: room for %d pod(s)%s" % (name, fit, " (" + "; ".join(short) + ")" if short else ""))
    return {
        "groups": slots // max(1, group_size),
        "slots": slots,
        "group_size": group_size,
        "per_pod": {k: _fmt(v, k) for k, v in sorted(per_pod.items())},
        "nodes": lines,
    }


def _fmt(value, resource=""):
    """A resource amount as a person reads it: memory and storage in Gi, counts and cores as numbers."""
    if resource == "memory" or resource.endswith("storage"):
        return "%sGi" % _fmt(value / 2**30)
    return int(value) if float(value) == int(value) else round(value, 3)


def _refused(message):
    return {"max_surge": 0, "max_unavailable": 1, "rolls": True, "refused": message, "lines": [message]}


def surge_plan(changes, replicas, spare, max_surge="auto", allow_downtime=False, current=None):
    """The rolling update of an upgrade: {max_surge, max_unavailable, rolls, refused, lines}. ``refused`` (the
    reason, else '') when the cluster cannot hold the surge asked for, or when the only group would go down and
    that is not allowed; LlmopsError for a surge that is no number.

    changes: workload_changes(); replicas: groups wanted; spare: spare_capacity(); max_surge: ``auto`` (as many
    new groups as the spare capacity holds, up to replicas) or a number of groups; current: the running
    workload's {max_surge, max_unavailable}, kept when nothing rolls (a re-run changes nothing).
    """
    replicas = int(replicas)
    spare = _dict(spare)
    groups = int(spare.get("groups") or 0)
    room = "spare capacity for %d more group(s) of %d pod(s), each requesting %s: %s" % (
        groups,
        int(spare.get("group_size") or 1),
        ", ".join("%s %s" % item for item in sorted(_dict(spare.get("per_pod")).items())) or "nothing",
        "; ".join(_list(spare.get("nodes"))) or "no eligible node",
    )
    current = _dict(current)
    if not changes or (len(changes) == 1 and changes[0].endswith("is created")):
        keep_surge = current.get("max_surge") if current.get("max_surge") is not None else 0
        keep_unavailable = current.get("max_unavailable") if current.get("max_unavailable") is not None else 1
        return {
            "max_surge": keep_surge,
            "max_unavailable": keep_unavailable,
            "rolls": False,
            "refused": "",
            "lines": ["nothing rolls: " + ("; ".join(changes) if changes else "the pod templates are unchanged")],
        }
    if str(max_surge) == "auto":
        surge = min(groups, replicas)
    else:
        try:
            surge = int(max_surge)
        except (TypeError, ValueError):
            raise LlmopsError("the upgrade's max surge must be auto or a number of groups, got %r" % (max_surge,))
        if surge < 0:
            raise LlmopsError("the upgrade's max surge must not be negative, got %d" % surge)
        if surge > groups:
            return _refused(
                "refusing the upgrade: a surge of %d group(s) needs room for %d more pod(s), the cluster has %s. "
                "Free the nodes, set the surge to what fits, or 0 to replace groups in place"
                % (surge, surge * int(spare.get("group_size") or 1), room)
            )
    lines = ["changes: " + "; ".join(changes), room]
    if surge > 0:
        lines.append(
            "rolling update: maxSurge %d, maxUnavailable 0: %d new group(s) start beside the old ones, every "
            "old group serves until a new one is Ready" % (surge, surge)
        )
        return {"max_surge": surge, "max_unavailable": 0, "rolls": True, "refused": "", "lines": lines}
    if replicas < 2 and not allow_downtime:
        return _refused(
            "refusing the upgrade: the cluster cannot hold a surge group beside the running one (%s), and with "
            "one replica replacing it in place takes the endpoint down while the new group loads. Free the "
            "nodes, or accept the downtime (lifecycle_upgrade_allow_downtime: true)" % room
        )
    lines.append(
        "rolling update: maxSurge 0, maxUnavailable 1: groups are replaced one at a time in place (%s)"
        % (
            "the endpoint is down until the new group is Ready"
            if replicas < 2
            else "%d of %d groups keep serving" % (replicas - 1, replicas)
        )
    )
    return {"max_surge": 0, "max_unavailable": 1, "rolls": True, "refused": "", "lines": lines}


def rollout_state(workload, pods=None, image=""):
    """Whether a rollout is done: {done, message}. Done when the controller saw the latest spec, every wanted
    group is updated and ready, and no engine pod runs an image other than ``image`` (when given)."""
    workload = _dict(workload)
    if not workload:
        return {"done": False, "message": "the workload does not exist"}
    metadata = _dict(workload.get("metadata"))
    status = _dict(workload.get("status"))
    replicas = int(_dict(workload.get("spec")).get("replicas") or 1)
    observed = status.get("observedGeneration")
    updated = int(status.get("updatedReplicas") or 0)
    ready = int(status.get("readyReplicas") or 0)
    stale = []
    for pod in _list(pods):
        if _dict(_dict(pod).get("metadata")).get("deletionTimestamp"):
            continue
        container = engine_container(_dict(_dict(pod).get("spec")))
        if image and container.get("image") != image:
            stale.append(_dict(pod.get("metadata")).get("name"))
    # LWS reports no observedGeneration; its updatedReplicas counts groups on the latest template.
    generation_seen = observed is None or int(observed) >= int(metadata.get("generation") or 0)
    done = generation_seen and updated >= replicas and ready >= replicas and not stale
    message = "%d/%d groups updated, %d ready%s" % (
        updated,
        replicas,
        ready,
        "; still on the old image: %s" % ", ".join(stale) if stale else "",
    )
    return {"done": done, "message": message}


# --- uninstall ---------------------------------------------------------------------------------------

# Reverse apply order (serve.yml applies model cache, then server, then exposure; add-ons and the
# scaling/routing objects sit on top): lower ranks go first.
_DELETE_RANK = {
    "HTTPRoute": 0,
    "Gateway": 0,
    "InferenceObjective": 0,
    "InferencePool": 0,
    "Ingress": 0,
    "Route": 0,
    "ScaledObject": 1,
    "HorizontalPodAutoscaler": 1,
    "Service": 2,
    "InferenceService": 3,
    "ServingRuntime": 3,
    "LeaderWorkerSet": 3,
    "StatefulSet": 3,
    "Deployment": 3,
    "PodGroup": 4,
    "PodDisruptionBudget": 4,
    "Job": 5,
    "ConfigMap": 6,
    "Secret": 6,
    "RoleBinding": 7,
    "Role": 7,
    "ServiceAccount": 8,
    "PersistentVolumeClaim": 9,
}


def _ref(obj):
    metadata = _dict(obj.get("metadata"))
    return {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "metadata": {"name": metadata.get("name"), "namespace": metadata.get("namespace")},
    }


def uninstall_plan(objects, server_name, remove_model_cache=False, cache_secret_names=None, remove_volumes=False):
    """The objects of server ``server_name`` to delete, in order, and those kept: {delete, keep, lines}.

    objects: what k8s_info found (or, in render mode, what the build steps made). An object belongs to the
    server when its ``app.kubernetes.io/name`` label is the server's and it is managed by llmops.inference, or
    when it is one of ``cache_secret_names`` (the model cache's credential Secrets, which carry no labels).
    Objects a controller owns go with their owner. The model cache (component ``model-cache``: PVCs, the
    download Jobs and script, and the credential Secrets) is kept unless ``remove_model_cache``; any other
    PersistentVolumeClaim (data such as Open WebUI's) unless ``remove_volumes``.
    """
    cache_secret_names = set(cache_secret_names or [])
    delete, keep, seen = [], [], set()
    for obj in _list(objects):
        obj = _dict(obj)
        metadata = _dict(obj.get("metadata"))
        labels = _dict(metadata.get("labels"))
        name = metadata.get("name")
        key = (obj.get("kind"), metadata.get("namespace"), name)
        if not name or key in seen:
            continue
        seen.add(key)
        cache_secret = obj.get("kind") == "Secret" and name in cache_secret_names
        ours = labels.get(NAME_LABEL) == server_name and labels.get(MANAGED_BY_LABEL) == MANAGED_BY
        if not (ours or cache_secret):
            continue
        if any(_dict(owner).get("controller") for owner in _list(metadata.get("ownerReferences"))):
            continue
        if obj.get("kind") not in _DELETE_RANK:
            continue
        cache = cache_secret or labels.get(COMPONENT_LABEL) == "model-cache"
        if cache and not remove_model_cache:
            keep.append(dict(_ref(obj), reason="model cache; lifecycle_uninstall_model_cache: true removes it"))
        elif not cache and obj.get("kind") == "PersistentVolumeClaim" and not remove_volumes:
            keep.append(dict(_ref(obj), reason="a volume; lifecycle_uninstall_volumes: true removes it"))
        else:
            delete.append(_ref(obj))
    delete.sort(key=lambda ref: (_DELETE_RANK[ref["kind"]], ref["kind"], ref["metadata"]["name"]))
    keep.sort(key=lambda ref: (ref["kind"], ref["metadata"]["name"]))
    lines = ["delete %s/%s" % (ref["kind"], ref["metadata"]["name"]) for ref in delete]
    lines += ["keep %s/%s (%s)" % (ref["kind"], ref["metadata"]["name"], ref.pop("reason")) for ref in keep]
    return {"delete": delete, "keep": keep, "lines": lines or ["nothing of %s is left to delete" % server_name]}


def crds_to_keep(crds, release_name, release_namespace, custom_resource_counts=None, remove_unused=False):
    """CRDs ``helm uninstall`` of a release would delete (those in its templates carry the release's
    annotations; Helm never deletes crds/) that must first be annotated ``helm.sh/resource-policy: keep``.

    Every such CRD is kept unless ``remove_unused``; then only those still holding custom resources (in any
    namespace: other releases use them), counted in ``custom_resource_counts`` ({crd name: count}), are kept.
    Returns {keep: [names], remove: [names], lines}.
    """
    counts = _dict(custom_resource_counts)
    keep, remove, lines = [], [], []
    for crd in _list(crds):
        metadata = _dict(_dict(crd).get("metadata"))
        annotations = _dict(metadata.get("annotations"))
        name = metadata.get("name")
        if annotations.get("meta.helm.sh/release-name") != release_name:
            continue
        if annotations.get("meta.helm.sh/release-namespace") not in (None, release_namespace):
            continue
        if annotations.get(KEEP_POLICY) == "keep":
            lines.append("%s: kept (already helm.sh/resource-policy: keep)" % name)
            continue
        used = int(counts.get(name) or 0)
        if remove_unused and used == 0:
            remove.append(name)
            lines.append("%s: no custom resources left, removed with the release" % name)
        else:
            keep.append(name)
            lines.append(
                "%s: kept (%s)"
                % (name, "%d custom resource(s) still use it" % used if used else "CRDs are kept unless asked")
            )
    return {"keep": sorted(keep), "remove": sorted(remove), "lines": lines}


def upgrade_plan(live, built, nodes, pods, replicas, max_surge="auto", allow_downtime=False):
    """The serving part of an upgrade, decided before anything is applied: {changes, rolls, max_surge,
    max_unavailable, spare, lines}. See workload_changes, spare_capacity and surge_plan; the spare capacity is
    only read when something rolls."""
    changes = workload_changes(live, built)
    rolls = bool(changes) and not (len(changes) == 1 and changes[0].endswith("is created"))
    spare = spare_capacity(nodes, pods, built) if rolls else {}
    current = workload_summary(live)["rollout"] if _dict(live) else {}
    plan = surge_plan(changes, replicas, spare, max_surge, allow_downtime, current)
    plan.update(changes=changes, spare=spare)
    return plan
