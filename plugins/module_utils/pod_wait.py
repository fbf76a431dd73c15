# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Waits that explain: where a set of pods stands, and which of their states cannot resolve by waiting.

Used by the pod_wait role (the model cache's Jobs, the engine group, the verify stage) through the
``pod_wait_state`` filter, on the pod objects ``kubernetes.core.k8s_info`` returns. A wait ends as soon as
every pod is done (Ready, or Succeeded for Jobs) or one pod is blocked:
- unschedulable for longer than a grace period (the scheduler's message, e.g. "0/4 nodes are available:
  2 Insufficient nvidia.com/gpu"): a cluster without an autoscaler never resolves it;
- an image that cannot be pulled (ErrImagePull, ImagePullBackOff, InvalidImageName, ErrImageNeverPull);
- a container that cannot be created (CreateContainerConfigError: a missing Secret/ConfigMap or key;
  CreateContainerError, RunContainerError);
- a container that keeps crashing (CrashLoopBackOff after ``crash_restarts`` restarts; its last
  termination reason and exit code, e.g. OOMKilled);
- a Job pod that failed (phase Failed) when the wait is for success.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import calendar
import re
import time

from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

# ready: servers; succeeded: Job pods; finished: Job pods that ended either way (the Jobs judge success)
CONDITIONS = ("ready", "succeeded", "finished")
IMAGE_REASONS = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")
CREATE_REASONS = ("CreateContainerConfigError", "CreateContainerError", "RunContainerError")

# Options of the pod_wait action (plugins/action/pod_wait.py; documented in plugins/modules/pod_wait.py).
WAIT_ARGUMENT_SPEC = dict(
    kubeconfig=dict(type="str"),
    namespace=dict(type="str", required=True),
    label_selectors=dict(type="list", elements="str", default=[]),
    expected=dict(type="int", default=1),
    condition=dict(type="str", choices=list(CONDITIONS), default="ready"),
    timeout=dict(type="int", default=600),
    poll_seconds=dict(type="int", default=10),
    crash_restarts=dict(type="int", default=3),
    unschedulable_grace_seconds=dict(type="int", default=60),
    failures_allowed=dict(type="int", default=0),
    what=dict(type="str", default="pods"),
    progress_seconds=dict(type="int", default=30),
)

# Engine logs can carry credentials (SGLang prints its ServerArgs, api_key included, at info level); every log
# line this collection shows goes through redact().
_SECRET = re.compile(
    r"""((?:api[_-]?key|hf[_-]?token|access[_-]?key(?:[_-]?id)?|secret[_-]?(?:access[_-]?)?key|password)"""
    r"""['"]?(?:\s*[=:]\s*|\s+)['"]?)[^'"\s,)]+""",
    re.IGNORECASE,
)


def redact(line):
    """The line with the value of anything named like a credential replaced by ***."""
    return _SECRET.sub(r"\1***", str(line))


def _timestamp(value):
    """Seconds since the epoch of an RFC 3339 UTC time as the API writes it (2026-11-30T02:50:01Z)."""
    try:
        return calendar.timegm(time.strptime(str(value), "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return None


def _condition(pod, kind):
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return condition
    return {}


def _statuses(pod):
    status = pod.get("status") or {}
    return [("init", s) for s in status.get("initContainerStatuses") or []] + [
        ("container", s) for s in status.get("containerStatuses") or []
    ]


def pod_blocker(pod, crash_restarts=3, unschedulable_grace_seconds=60, now=None):
    """The reason this pod cannot get Ready or Succeeded by waiting, as a dict, or None."""
    name = (pod.get("metadata") or {}).get("name", "?")
    now = time.time() if now is None else now
    scheduled = _condition(pod, "PodScheduled")
    if scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        since = _timestamp(scheduled.get("lastTransitionTime"))
        if since is None or now - since >= unschedulable_grace_seconds:
            return {"pod": name, "reason": "Unschedulable", "message": scheduled.get("message") or ""}
    for kind, container in _statuses(pod):
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason") or ""
        found = {"pod": name, "container": container.get("name", "?"), "container_kind": kind}
        if reason in IMAGE_REASONS:
            found.update(reason=reason, message="%s: %s" % (container.get("image", "?"), waiting.get("message", "")))
            return found
        if reason in CREATE_REASONS:
            found.update(reason=reason, message=waiting.get("message") or "")
            return found
        restarts = int(container.get("restartCount") or 0)
        # between restarts the container shows CrashLoopBackOff, or for a moment its fresh exit
        ended = (container.get("state") or {}).get("terminated")
        if (reason == "CrashLoopBackOff" or ended) and restarts >= crash_restarts:
            last = ended or (container.get("lastState") or {}).get("terminated") or {}
            found.update(
                reason="CrashLoopBackOff",
                message="restarted %d times; last exit %s (%s)"
                % (restarts, last.get("exitCode", "?"), last.get("reason") or "Error"),
                logs=True,
            )
            return found
    return None


def _done(pod, condition):
    status = pod.get("status") or {}
    if condition == "succeeded":
        return status.get("phase") == "Succeeded"
    if condition == "finished":
        return status.get("phase") in ("Succeeded", "Failed")
    return status.get("phase") == "Running" and _condition(pod, "Ready").get("status") == "True"


def _phase(pod):
    status = pod.get("status") or {}
    for _kind, container in _statuses(pod):
        reason = ((container.get("state") or {}).get("waiting") or {}).get("reason")
        if reason and reason not in ("PodInitializing", "ContainerCreating"):
            return reason
    if status.get("phase") == "Running" and _condition(pod, "Ready").get("status") != "True":
        return "Running, not Ready"
    return status.get("phase") or "Unknown"


def _failed_pod(pod):
    status = pod.get("status") or {}
    name = (pod.get("metadata") or {}).get("name", "?")
    message = status.get("message") or ""
    for _kind, container in _statuses(pod):
        ended = (container.get("state") or {}).get("terminated") or {}
        if ended.get("exitCode"):
            message = "container %s exited %s (%s)" % (container.get("name"), ended["exitCode"], ended.get("reason"))
            return {
                "pod": name,
                "container": container.get("name"),
                "reason": "Failed",
                "message": message,
                "logs": True,
            }
    return {"pod": name, "reason": "Failed", "message": message or "the pod failed"}


def pod_wait_state(
    pods,
    expected=1,
    condition="ready",
    crash_restarts=3,
    unschedulable_grace_seconds=60,
    failures_allowed=0,
    now=None,
):
    """Where a wait for ``expected`` pods to be ``condition`` (ready|succeeded) stands.

    Returns done (every expected pod there and done), blocked (a list of pod_blocker dicts: empty while
    waiting can still help), ``stalled`` (running containers of pods not done yet: their logs say what they
    wait for), ``ready`` (pods done), ``expected``, ``condition`` and a one-line ``summary``
    ("1 of 2 pods ready; llmops-0: Running, not Ready; llmops-0-1: Pending"). For ``succeeded`` (Job
    pods), more than ``failures_allowed`` Failed pods (the Jobs' retries) block the wait.
    """
    if condition not in CONDITIONS:
        raise LlmopsError("pod_wait_state: condition must be one of %s, got %r" % (", ".join(CONDITIONS), condition))
    try:
        expected = int(expected)
    except (TypeError, ValueError):
        raise LlmopsError("pod_wait_state: expected must be a number of pods, got %r" % (expected,))
    if not isinstance(pods, list):
        raise LlmopsError("pod_wait_state: expects the list of pods from kubernetes.core.k8s_info (resources)")
    live = [pod for pod in pods if not (pod.get("metadata") or {}).get("deletionTimestamp")]
    done = [pod for pod in live if _done(pod, condition)]
    failed = [pod for pod in live if (pod.get("status") or {}).get("phase") == "Failed"]
    waiting = [pod for pod in live if not _done(pod, condition) and pod not in failed]
    blocked = [
        found for found in (pod_blocker(p, crash_restarts, unschedulable_grace_seconds, now) for p in waiting) if found
    ]
    if failed and condition != "finished" and (condition == "ready" or len(failed) > int(failures_allowed)):
        blocked += [_failed_pod(pod) for pod in failed]
    others = sorted("%s: %s" % ((pod.get("metadata") or {}).get("name", "?"), _phase(pod)) for pod in failed + waiting)
    summary = "%d of %d pods %s" % (len(done), expected, condition)
    if others:
        summary += "; " + "; ".join(others)
    if len(live) < expected:
        summary += "; %d not created yet" % (expected - len(live))
    # the containers of pods still short of Ready: their logs say what they wait for when time runs out
    stalled = [
        {"pod": (pod.get("metadata") or {}).get("name", "?"), "container": status.get("name", "?")}
        for pod in waiting
        for kind, status in _statuses(pod)
        if kind == "container" and (status.get("state") or {}).get("running")
    ]
    return {
        "done": len(done) >= expected and expected > 0,
        "stalled": stalled,
        "blocked": blocked,
        "ready": len(done),
        "expected": expected,
        "condition": condition,
        "summary": summary,
    }


def stalled_message(what, state, timeout, log_results=None):
    """The failure message of a wait that ran out of time: the summary, then each stalled container's log tail."""
    lines = ["%s did not become %s within %s s: %s" % (what, state["condition"], timeout, state["summary"])]
    for result in log_results or []:
        item = result.get("item") or {}
        tail = str(result.get("log") or "").rstrip("\n").splitlines()[-20:]
        if tail:
            lines.append("last log lines of %s/%s:" % (item.get("pod"), item.get("container")))
            lines.extend("    " + redact(line) for line in tail)
    return lines


def blocked_message(what, state, log_results=None, event_results=None):
    """The failure message of a blocked wait: what, each blocked pod and why, its events and log tail.

    ``log_results`` and ``event_results`` are the registered loop results of kubernetes.core.k8s_log (items
    are the blocked entries) and k8s_info kind Event (items are pod names), as the pod_wait role passes them.
    """
    logs = {}
    for result in log_results or []:
        item = result.get("item") or {}
        logs["%s/%s" % (item.get("pod"), item.get("container"))] = result.get("log") or ""
    events = {result.get("item"): result.get("resources") or [] for result in event_results or []}
    lines = ["%s cannot become %s by waiting: %s" % (what, state["condition"], state["summary"])]
    for found in state["blocked"]:
        where = found["pod"] + ("/" + found["container"] if found.get("container") else "")
        lines.append("%s: %s: %s" % (where, found["reason"], found["message"]))
        for event in events.get(found["pod"], [])[-5:]:
            lines.append(
                "  event %s %s: %s" % (event.get("type", ""), event.get("reason", ""), event.get("message", ""))
            )
        tail = logs.get(where)
        if tail:
            lines.append("  last log lines of %s:" % where)
            lines.extend("    " + redact(line) for line in str(tail).rstrip("\n").splitlines()[-20:])
    return lines


def progress_line(what, state, elapsed, timeout, log=None):
    """One line a person can follow during a long wait: where the pods stand, the time used, and the last log
    line of a container still starting (the engine's loading progress, the downloader's bytes)."""
    text = "%s: %s (%d s of %d s)" % (what, state["summary"], elapsed, timeout)
    if log and log[1]:
        text += " | %s: %s" % (log[0], redact(log[1]).strip()[:240])
    return text


def wait_for_pods(read_pods, read_last_line, show, options, clock=time.monotonic, sleep=time.sleep, now=time.time):
    """Poll until the pods are done, one is blocked, or the time is up; report progress on the way.

    ``read_pods()`` returns the pod list (raises LlmopsError when the API refuses); ``read_last_line(pod,
    container)`` the last log line or ''; ``show(text)`` prints a progress line. A line is shown whenever the
    summary changes and at least every ``progress_seconds``. Returns (state, pods, polls, elapsed seconds).
    """
    started = clock()
    shown_at, shown_summary, polls = None, None, 0
    while True:
        pods = read_pods()
        polls += 1
        state = pod_wait_state(
            pods,
            options["expected"],
            options["condition"],
            options["crash_restarts"],
            options["unschedulable_grace_seconds"],
            options["failures_allowed"],
            now(),
        )
        elapsed = clock() - started
        if state["done"] or state["blocked"] or elapsed >= options["timeout"]:
            return state, pods, polls, elapsed
        due = shown_at is None or elapsed - shown_at >= options["progress_seconds"]
        if due or state["summary"] != shown_summary:
            log = None
            if due and state["stalled"]:
                first = state["stalled"][0]
                log = ("%s/%s" % (first["pod"], first["container"]), read_last_line(first["pod"], first["container"]))
            show(progress_line(options["what"], state, elapsed, options["timeout"], log))
            shown_summary = state["summary"]
            if due:
                shown_at = elapsed
        sleep(max(1, min(options["poll_seconds"], options["timeout"] - elapsed)))
