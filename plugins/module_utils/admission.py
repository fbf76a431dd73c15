# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Will the cluster admit the pods the serve stage is about to create?

Pod Security admission, OpenShift's SCCs and admission webhooks are judged by the API server itself: each pod
template is sent as a Pod with ``dryRun=All`` (nothing stored) by the admission_check module. What a dry run of one
pod cannot see is the sum: a ResourceQuota that admits one engine pod but not the whole group. That arithmetic lives
here, as pure functions: the pods each object will run, their quota usage (the API server's own rules: a missing
request defaults to the limit; init containers count as the max of themselves against the sum of the app
containers), and the shortfall against each quota's free room.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from decimal import Decimal, InvalidOperation

# Kubernetes resource.Quantity suffixes (binary SI, decimal SI, milli).
_SUFFIXES = {
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")

# Quota names for the compute resources that also have a bare alias (cpu == requests.cpu).
_STANDARD = ("cpu", "memory", "ephemeral-storage")

# Where each workload kind keeps its pod template(s), and how many pods each template runs.
_TEMPLATE_KINDS = ("Deployment", "StatefulSet", "ReplicaSet", "Job", "DaemonSet")


def parse_quantity(value):
    """A Kubernetes quantity ('500m', '64Gi', 8, '1e3') as a Decimal; ValueError for anything else."""
    if isinstance(value, bool) or value is None:
        raise ValueError("not a Kubernetes quantity: %r" % (value,))
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    match = _QUANTITY.match(str(value).strip())
    if not match:
        raise ValueError("not a Kubernetes quantity: %r" % (value,))
    try:
        return Decimal(match.group(1)) * _SUFFIXES[match.group(2) or ""]
    except InvalidOperation:
        raise ValueError("not a Kubernetes quantity: %r" % (value,))


def format_quantity(name, amount):
    """A readable amount for a message: memory-like resources in GiB, CPU in cores, counts as integers."""
    base = name.split(".", 1)[1] if name.startswith(("requests.", "limits.")) else name
    if base in ("memory", "ephemeral-storage", "storage") or base.startswith("hugepages-"):
        return "%sGi" % _trim(amount / _SUFFIXES["Gi"])
    return _trim(amount)


def _trim(amount):
    text = "%.3f" % amount
    return text.rstrip("0").rstrip(".") if "." in text else text


def _count(value, default):
    try:
        return int(value if value is not None else default)
    except (TypeError, ValueError):
        return default


def pod_templates(objects, namespace=""):
    """The pod templates of ``objects`` with the number of pods each will run.

    Returns dicts: ``owner`` ('LeaderWorkerSet/name'), ``role`` (leader, worker or pod), ``namespace``,
    ``template`` (metadata + spec) and ``pods``. A LeaderWorkerSet runs ``replicas`` leaders and
    ``replicas * (size - 1)`` workers; without a leaderTemplate the worker template runs every pod of the group.
    A DaemonSet counts one pod (its count depends on the nodes it matches).
    """
    found = []
    for obj in objects or []:
        if not isinstance(obj, dict):
            continue
        kind = obj.get("kind") or ""
        meta = _dict(obj.get("metadata"))
        spec = _dict(obj.get("spec"))
        where = str(meta.get("namespace") or namespace)
        owner = "%s/%s" % (kind, meta.get("name", "?"))
        claims = _claim_template_names(kind, spec)
        for role, template, pods in _object_templates(kind, meta, spec):
            if isinstance(template, dict) and isinstance(template.get("spec"), dict) and pods > 0:
                found.append(
                    {
                        "owner": owner,
                        "role": role,
                        "namespace": where,
                        "template": template,
                        "pods": pods,
                        "claims": claims,
                    }
                )
    return found


def _claim_template_names(kind, spec):
    """Names of the volumeClaimTemplates whose volumes the StatefulSet/LWS controller adds to every pod."""
    if kind == "LeaderWorkerSet":
        spec = _dict(spec.get("leaderWorkerTemplate"))
    elif kind != "StatefulSet":
        return []
    return [
        str(_dict(claim.get("metadata")).get("name"))
        for claim in spec.get("volumeClaimTemplates") or []
        if isinstance(claim, dict) and _dict(claim.get("metadata")).get("name")
    ]


def _object_templates(kind, meta, spec):
    """(role, template, pods) for each pod template of one object."""
    if kind == "LeaderWorkerSet":
        group = _dict(spec.get("leaderWorkerTemplate"))
        replicas = _count(spec.get("replicas"), 1)
        size = max(_count(group.get("size"), 1), 1)
        if group.get("leaderTemplate"):
            return [
                ("leader", group.get("leaderTemplate"), replicas),
                ("worker", group.get("workerTemplate"), replicas * (size - 1)),
            ]
        return [("pod", group.get("workerTemplate"), replicas * size)]
    if kind == "Job":
        return [("pod", spec.get("template"), _count(spec.get("parallelism"), 1))]
    if kind == "DaemonSet":
        return [("pod", spec.get("template"), 1)]
    if kind in _TEMPLATE_KINDS:
        return [("pod", spec.get("template"), _count(spec.get("replicas"), 1))]
    if kind == "Pod":
        return [("pod", {"metadata": meta, "spec": spec}, 1)]
    return []


def dry_run_pod(entry, max_name=63):
    """The Pod a template becomes, named after its owner, for a ``dryRun=All`` create (nothing is stored)."""
    template = entry["template"]
    base = re.sub(r"[^a-z0-9-]+", "-", entry["owner"].split("/", 1)[-1].lower()).strip("-") or "pod"
    suffix = "-preflight-" + entry["role"]
    metadata = {
        "name": (base[: max_name - len(suffix)].rstrip("-") + suffix),
        "namespace": entry["namespace"],
        "labels": dict((template.get("metadata") or {}).get("labels") or {}),
        "annotations": dict((template.get("metadata") or {}).get("annotations") or {}),
    }
    spec = template["spec"]
    claims = entry.get("claims") or []
    if claims:
        # The controller mounts a claim per template into each pod (replacing a volume of the same name), so the
        # pod the API server judges must have it too, or every mount of it reads "Not found".
        spec = dict(spec)
        volumes = [v for v in spec.get("volumes") or [] if not (isinstance(v, dict) and v.get("name") in claims)]
        spec["volumes"] = volumes + [
            {"name": claim, "persistentVolumeClaim": {"claimName": "%s-%s" % (claim, metadata["name"])}}
            for claim in claims
        ]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def _container_usage(container):
    """Quota usage of one container: requests (a missing request defaults to its limit) and limits."""
    resources = container.get("resources") if isinstance(container, dict) else None
    resources = resources if isinstance(resources, dict) else {}
    limits = resources.get("limits") if isinstance(resources.get("limits"), dict) else {}
    requests = dict(limits)
    requests.update(resources.get("requests") if isinstance(resources.get("requests"), dict) else {})
    usage = {}
    for name, value in requests.items():
        usage["requests." + name] = parse_quantity(value)
    for name, value in limits.items():
        usage["limits." + name] = parse_quantity(value)
    return usage


def _dict(value):
    return value if isinstance(value, dict) else {}


def _list(value):
    return value if isinstance(value, list) else []


def pod_usage(spec):
    """What one pod charges against a ResourceQuota: the max of each init container against the app containers'
    sum (init containers run one at a time, before the app containers), plus ``pods: 1`` and the overhead."""
    total = {}
    for container in _list(spec.get("containers")):
        for name, amount in _container_usage(container).items():
            total[name] = total.get(name, Decimal(0)) + amount
    for container in _list(spec.get("initContainers")):
        for name, amount in _container_usage(container).items():
            total[name] = max(total.get(name, Decimal(0)), amount)
    overhead = spec.get("overhead") if isinstance(spec.get("overhead"), dict) else {}
    for name, value in overhead.items():
        for prefix in ("requests.", "limits."):
            total[prefix + name] = total.get(prefix + name, Decimal(0)) + parse_quantity(value)
    for name in _STANDARD:
        if "requests." + name in total:
            total[name] = total["requests." + name]
    total["pods"] = Decimal(1)
    return total


def usage_of(templates):
    """The summed quota usage of every pod the templates will run, per namespace."""
    totals = {}
    for entry in templates:
        per_pod = pod_usage(entry["template"]["spec"])
        into = totals.setdefault(entry["namespace"], {})
        for name, amount in per_pod.items():
            into[name] = into.get(name, Decimal(0)) + amount * entry["pods"]
    return totals


def quota_problems(quotas, needed, released=None):
    """Shortfalls of ``needed`` (usage_of for one namespace) against each unscoped ResourceQuota's free room.

    ``released`` is the usage of pods that the new objects replace (the current release's own pods): they are
    counted as used by the quota but will be gone, so re-running an unchanged deployment is never refused. Scoped
    quotas (scopes, scopeSelector) are reported as not judged rather than guessed.
    """
    problems, notes = [], []
    released = released or {}
    for quota in quotas or []:
        meta = quota.get("metadata") or {}
        spec = quota.get("spec") or {}
        label = "ResourceQuota %s/%s" % (meta.get("namespace", "?"), meta.get("name", "?"))
        if spec.get("scopes") or spec.get("scopeSelector"):
            notes.append("%s has scopes and was not judged" % label)
            continue
        status = quota.get("status") or {}
        hard = status.get("hard") or spec.get("hard") or {}
        used = status.get("used") or {}
        for name in sorted(hard):
            want = needed.get(name)
            if not want:
                continue
            try:
                limit = parse_quantity(hard[name])
                in_use = parse_quantity(used.get(name, 0))
            except ValueError:
                notes.append("%s: %s=%r is not a quantity" % (label, name, hard[name]))
                continue
            free = limit - max(in_use - released.get(name, Decimal(0)), Decimal(0))
            if want > free:
                problems.append(
                    "%s allows %s=%s and %s is in use by other pods: the deployment needs %s. Raise the quota, "
                    "or lower the replicas/resources of the plan"
                    % (
                        label,
                        name,
                        format_quantity(name, limit),
                        format_quantity(name, limit - free),
                        format_quantity(name, want),
                    )
                )
    return problems, notes


def pod_label_selectors(templates):
    """Label selectors for the pods that ``templates`` will replace: the owner's own labels on its template.

    LWS stamps ``leaderworkerset.sigs.k8s.io/name``; other workloads carry their template labels. Returns one
    selector string per owner and namespace (deduplicated) for a pod list that finds the current release's pods.
    """
    selectors = []
    for entry in templates:
        kind, name = entry["owner"].split("/", 1)
        if kind == "LeaderWorkerSet":
            selector = "leaderworkerset.sigs.k8s.io/name=%s" % name
        else:
            labels = (entry["template"].get("metadata") or {}).get("labels") or {}
            if not labels:
                continue
            selector = ",".join("%s=%s" % item for item in sorted(labels.items()))
        if (entry["namespace"], selector) not in selectors:
            selectors.append((entry["namespace"], selector))
    return selectors


def admission_problem(owner, role, namespace, status, reason, message):
    """One line for a pod template the API server refused, with the fix for the usual causes."""
    text = "%s (%s pod) is refused in namespace %s: %s" % (owner, role, namespace, message or reason or status)
    lowered = (message or "").lower()
    if "podsecurity" in lowered or "pod security" in lowered:
        text += (
            " | the namespace's Pod Security level forbids it: label the namespace "
            "pod-security.kubernetes.io/enforce=privileged (engine pods need IPC_LOCK and, with RDMA, host devices), "
            "or use a namespace that allows them"
        )
    elif "securitycontextconstraints" in lowered or "unable to validate against any security context" in lowered:
        text += " | no SCC admits the pod: the serve stage creates one for OpenShift (inference_server_platform)"
    elif "exceeded quota" in lowered:
        text += " | a ResourceQuota refuses even one pod: raise the quota or lower the pod's resources"
    return text


def unserved(objects, served):
    """Objects whose (apiVersion, kind) the API server does not serve, as problem lines.

    ``served(api_version, kind)`` answers from the cluster's discovery. An add-on that is missing, or installed at a
    version without that API (an LWS or KServe release older than the objects), is named before anything is applied.
    """
    problems, seen = [], set()
    for obj in objects or []:
        if not isinstance(obj, dict):
            continue
        key = (str(obj.get("apiVersion") or ""), str(obj.get("kind") or ""))
        if key in seen or not all(key):
            continue
        seen.add(key)
        if not served(*key):
            name = (obj.get("metadata") or {}).get("name", "?") if isinstance(obj.get("metadata"), dict) else "?"
            problems.append(
                "the cluster serves no %s in %s (%s/%s): install the add-on that provides it, or upgrade it to a "
                "release with that API (docs/addons.md)" % (key[1], key[0], key[1], name)
            )
    return problems
