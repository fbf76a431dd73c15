"""Waits that explain (issue 13, issue 18): pod states recorded from the live test bed.

tests/unit/fixtures/pod_wait/*.json are real pod objects (managedFields dropped) read from the test bed's
real kube-scheduler and real kubelet/containerd nodes: an image that does not exist (ImagePullBackOff), a pod
asking for 9 GPUs (Unschedulable, the scheduler's own message), an env from a missing Secret
(CreateContainerConfigError), a container exiting 3 (CrashLoopBackOff after 5 restarts), a Job-style pod that
exited 1 (Failed), a Ready HTTP server and a Running pod whose readiness probe still fails.
"""

import copy
import json
import os

import pytest

from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError
from ansible_collections.llmops.inference.plugins.module_utils.pod_wait import (
    blocked_message,
    pod_blocker,
    pod_wait_state,
    redact,
    stalled_message,
    wait_for_pods,
)

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "pod_wait")
# Far enough after the recording that every grace period has passed.
LATER = 4102444800


def pod(name):
    with open(os.path.join(FIXTURES, name + ".json")) as handle:
        return json.load(handle)


@pytest.mark.parametrize(
    "name, reason, words",
    [
        ("image-missing", "ImagePullBackOff", "llmops.invalid/testbed/no-such-image:1"),
        ("too-many-gpus", "Unschedulable", "Insufficient nvidia.com/gpu"),
        ("secret-missing", "CreateContainerConfigError", 'secret "no-such-secret" not found'),
        ("crashing", "CrashLoopBackOff", "last exit 3 (Error)"),
    ],
)
def test_stuck_pods_are_named_with_the_reason(name, reason, words):
    found = pod_blocker(pod(name), now=LATER)
    assert found["pod"] == name and found["reason"] == reason
    assert words in found["message"]


def test_pods_that_may_still_get_there_are_not_stuck():
    for name in ("serving", "loading"):
        assert pod_blocker(pod(name), now=LATER) is None
    # a young Unschedulable pod may still fit once a group being torn down frees its GPUs
    assert pod_blocker(pod("too-many-gpus"), unschedulable_grace_seconds=10**10, now=LATER) is None
    # a crash loop below the restart threshold is left to restart
    assert pod_blocker(pod("crashing"), crash_restarts=99, now=LATER) is None


def test_a_fresh_exit_counts_once_the_restarts_are_reached():
    crashed = pod("crashing")
    status = crashed["status"]["containerStatuses"][0]
    status["state"] = {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}
    found = pod_blocker(crashed, crash_restarts=3, now=LATER)
    assert found["reason"] == "CrashLoopBackOff" and "last exit 137 (OOMKilled)" in found["message"]


def test_state_counts_ready_pods_and_stops_on_the_first_stuck_one():
    state = pod_wait_state([pod("serving"), pod("loading")], expected=2, now=LATER)
    assert state["done"] is False and state["blocked"] == [] and state["ready"] == 1
    assert state["summary"] == "1 of 2 pods ready; loading: Running, not Ready"
    state = pod_wait_state([pod("serving"), pod("image-missing")], expected=2, now=LATER)
    assert [b["reason"] for b in state["blocked"]] == ["ImagePullBackOff"]
    assert "image-missing: ImagePullBackOff" in state["summary"]
    assert pod_wait_state([pod("serving")], expected=1, now=LATER)["done"] is True
    missing = pod_wait_state([pod("serving")], expected=2, now=LATER)
    assert not missing["done"] and missing["summary"].endswith("1 not created yet")


def test_failed_job_pods_block_only_beyond_the_retries():
    failed = pod("job-failed")
    state = pod_wait_state([failed], expected=1, condition="succeeded", failures_allowed=1, now=LATER)
    assert state["blocked"] == [] and not state["done"]
    state = pod_wait_state([failed], expected=1, condition="succeeded", now=LATER)
    (found,) = state["blocked"]
    assert found["reason"] == "Failed" and found["message"] == "container download exited 1 (Error)"
    assert found["logs"] is True
    done = copy.deepcopy(failed)
    done["status"]["phase"] = "Succeeded"
    assert pod_wait_state([done], condition="succeeded", now=LATER)["done"] is True


def test_finished_job_pods_end_the_wait_either_way():
    """condition finished: the Jobs judge success (their retries, podFailurePolicy); stuck pods still block."""
    state = pod_wait_state([pod("job-failed")], expected=1, condition="finished", now=LATER)
    assert state["done"] is True and state["blocked"] == []
    state = pod_wait_state([pod("job-failed"), pod("image-missing")], expected=2, condition="finished", now=LATER)
    assert [b["reason"] for b in state["blocked"]] == ["ImagePullBackOff"]


def test_pods_being_deleted_do_not_count():
    old = pod("serving")
    old["metadata"]["deletionTimestamp"] = "2026-11-30T02:30:00Z"
    assert pod_wait_state([old], expected=1, now=LATER)["done"] is False


def test_the_message_carries_events_and_the_log_tail():
    state = pod_wait_state([pod("crashing")], expected=1, now=LATER)
    logs = [{"item": state["blocked"][0], "log": "loading weights\nRuntimeError: not enough memory for the KV cache\n"}]
    events = [{"item": "crashing", "resources": [{"type": "Warning", "reason": "BackOff", "message": "Back-off"}]}]
    lines = blocked_message("the engine pods of tiny", state, logs, events)
    assert (
        lines[0]
        == "the engine pods of tiny cannot become ready by waiting: 0 of 1 pods ready; crashing: CrashLoopBackOff"
    )
    assert lines[1].startswith("crashing/engine: CrashLoopBackOff: restarted 5 times; last exit 3 (Error)")
    assert "  event Warning BackOff: Back-off" in lines
    assert lines[-1] == "    RuntimeError: not enough memory for the KV cache"


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"condition": "healthy"}, "condition must be one of ready, succeeded, finished"),
        ({"expected": "two"}, "expected must be a number of pods"),
    ],
)
def test_bad_input_is_refused(kwargs, words):
    with pytest.raises(LlmopsError, match=words):
        pod_wait_state([], **kwargs)
    with pytest.raises(LlmopsError, match="list of pods"):
        pod_wait_state({"resources": []})


def test_a_wait_out_of_time_shows_what_the_running_pods_wait_for():
    state = pod_wait_state([pod("serving"), pod("loading")], expected=2, now=LATER)
    assert state["stalled"] == [{"pod": "loading", "container": "engine"}]
    logs = [{"item": state["stalled"][0], "log": "rendezvous: waiting for rank(s) [1] at tiny-0.tiny:20000\n"}]
    lines = stalled_message("the engine pods of tiny", state, 30, logs)
    assert lines == [
        "the engine pods of tiny did not become ready within 30 s: 1 of 2 pods ready; loading: Running, not Ready",
        "last log lines of loading/engine:",
        "    rendezvous: waiting for rank(s) [1] at tiny-0.tiny:20000",
    ]


class Clock:
    """Time that moves only when the loop sleeps (each poll is instant)."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


OPTIONS = {
    "expected": 1,
    "condition": "ready",
    "crash_restarts": 3,
    "unschedulable_grace_seconds": 60,
    "failures_allowed": 0,
    "timeout": 300,
    "poll_seconds": 10,
    "progress_seconds": 30,
    "what": "the engine pods",
}


def _run(sequence, options=None, last_line="Loading safetensors checkpoint shards:  45% Completed | 73/163"):
    """wait_for_pods over a recorded sequence of pod lists (the last one repeats)."""
    clock, shown, reads = Clock(), [], []

    def read_pods():
        reads.append(clock())
        return copy.deepcopy(sequence[min(len(reads), len(sequence)) - 1])

    state, pods, polls, elapsed = wait_for_pods(
        read_pods,
        lambda pod, container: last_line,
        shown.append,
        dict(OPTIONS, **(options or {})),
        clock=clock,
        sleep=clock.sleep,
        now=lambda: LATER,
    )
    return state, polls, elapsed, shown


def test_a_long_load_prints_progress_with_the_engines_last_log_line():
    loading, serving = [pod("loading")], [pod("serving")]
    state, polls, elapsed, shown = _run([loading] * 10 + [serving])
    assert state["done"] and polls == 11 and elapsed == 100
    # the first poll, then every 30 s; a changed summary would add a line at once
    assert len(shown) == 4, shown
    assert shown[0].startswith("the engine pods: 0 of 1 pods ready; ")
    assert shown[0].endswith(
        "(0 s of 300 s) | %s/%s: Loading safetensors checkpoint shards:  45%% Completed | 73/163"
        % (pod("loading")["metadata"]["name"], pod("loading")["status"]["containerStatuses"][0]["name"])
    )
    assert "(30 s of 300 s)" in shown[1] and "(90 s of 300 s)" in shown[3]


def test_a_stuck_pod_ends_the_wait_at_the_first_poll_without_progress_lines():
    state, polls, _elapsed, shown = _run([[pod("image-missing")]])
    assert polls == 1 and shown == [] and state["blocked"][0]["reason"] in ("ErrImagePull", "ImagePullBackOff")


def test_time_running_out_returns_the_state_not_done():
    state, polls, elapsed, shown = _run([[pod("loading")]], {"timeout": 45, "poll_seconds": 20})
    assert not state["done"] and not state["blocked"] and elapsed == 45 and polls == 4
    assert len(shown) == 2


def test_a_changed_summary_is_shown_at_once_and_log_lines_are_redacted():
    two = dict(OPTIONS, expected=2)
    sequence = [[pod("loading")], [pod("loading"), pod("serving")]]
    _state, _polls, _elapsed, shown = _run(sequence, two, last_line="ServerArgs(api_key='sk-live-123', port=30000)")
    assert "1 not created yet" in shown[0] and "api_key='***'" in shown[0] and "sk-live-123" not in shown[0]
    assert shown[1].startswith("the engine pods: 1 of 2 pods ready") and "|" not in shown[1]


@pytest.mark.parametrize(
    "line,shown",
    [
        ("ServerArgs(model_path='m', api_key='sk-1', port=1)", "ServerArgs(model_path='m', api_key='***', port=1)"),
        ("--api-key sk-2 --port 1", "--api-key *** --port 1"),
        ("HF_TOKEN=hf_abc", "HF_TOKEN=***"),
        ("AWS_SECRET_ACCESS_KEY: abc", "AWS_SECRET_ACCESS_KEY: ***"),
        ("Decode batch. #new-token: 5, #cached-token: 0", "Decode batch. #new-token: 5, #cached-token: 0"),
    ],
)
def test_credentials_in_log_lines_are_redacted(line, shown):
    assert redact(line) == shown
