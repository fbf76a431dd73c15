#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: pod_wait
short_description: Wait for pods to be Ready or to finish, printing progress, stopping early on a stuck pod
version_added: 0.3.0
description:
  - Polls the pods of O(namespace) matching O(label_selectors) with M(kubernetes.core.k8s_info) until O(expected) of
    them are done (O(condition)), one of them is in a state that waiting cannot fix (Unschedulable past a grace
    period, an image that cannot be pulled, a container that cannot be created, a crash loop, a failed Job pod), or
    O(timeout) passes.
  - While it waits it prints a progress line whenever the pods' state changes and at least every
    O(progress_seconds), with the last log line of a container still starting (the engine's loading progress, the
    downloader's bytes). Credentials in log lines are shown as ***.
  - It does not fail by itself; it returns RV(state), which the C(pod_wait) role turns into a failure with the
    reason, the events and the log lines (the filters C(pod_wait_report) and C(pod_wait_timeout_report)).
  - An action plugin; it runs the two kubernetes.core modules on the task's host. Read only, so check mode runs
    it as well.
options:
  kubeconfig:
    description: Kubeconfig path for the API calls; empty uses kubernetes.core's own defaults.
    type: str
  namespace:
    description: Namespace of the pods.
    type: str
    required: true
  label_selectors:
    description: Label selectors of the pods, as for M(kubernetes.core.k8s_info).
    type: list
    elements: str
    default: []
  expected:
    description: How many pods must be done.
    type: int
    default: 1
  condition:
    description:
      - C(ready) for servers (Running and Ready), C(succeeded) for Job pods, C(finished) for Job pods that ended
        either way (the Jobs judge success).
    type: str
    choices: [ready, succeeded, finished]
    default: ready
  timeout:
    description: Seconds before the wait ends with RV(state.done) false.
    type: int
    default: 600
  poll_seconds:
    description: Seconds between polls.
    type: int
    default: 10
  crash_restarts:
    description: Restarts after which a container in CrashLoopBackOff ends the wait.
    type: int
    default: 3
  unschedulable_grace_seconds:
    description: How long a pod may be Unschedulable before it ends the wait.
    type: int
    default: 60
  failures_allowed:
    description: Failed pods tolerated when waiting for C(succeeded) (the Jobs' own retries).
    type: int
    default: 0
  what:
    description: What is waited for, in words, for the progress lines.
    type: str
    default: pods
  progress_seconds:
    description: The longest time between two progress lines.
    type: int
    default: 30
requirements:
  - kubernetes.core (k8s_info, k8s_log) and its Python client on the task's host
author:
  - llmops.inference maintainers (@llmops)
"""

EXAMPLES = r"""
- name: Wait for the engine group, printing progress every minute
  llmops.inference.pod_wait:
    namespace: llmops
    label_selectors: ["leaderworkerset.sigs.k8s.io/name=deepseek-r1"]
    expected: 2
    timeout: 3600
    progress_seconds: 60
    what: the engine pods of deepseek-r1
  register: engine_wait
"""

RETURN = r"""
state:
  description: Where the wait ended (the filter C(pod_wait_state)'s result).
  returned: success
  type: dict
  contains:
    done:
      description: Every expected pod is done.
      type: bool
    blocked:
      description: Pods that cannot get done by waiting, each with pod, container, reason and message.
      type: list
      elements: dict
    stalled:
      description: Running containers of pods not done yet (their logs say what they wait for).
      type: list
      elements: dict
    summary:
      description: One line, for example C(1 of 2 pods ready; r1-0 is Running, not Ready).
      type: str
resources:
  description: The pods as last read.
  returned: success
  type: list
  elements: dict
polls:
  description: How many times the pods were read.
  returned: success
  type: int
elapsed:
  description: Seconds the wait took.
  returned: success
  type: int
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.llmops.inference.plugins.module_utils.pod_wait import WAIT_ARGUMENT_SPEC


def main():
    # The action plugin of the same name does the work; this runs only when the action is bypassed.
    module = AnsibleModule(argument_spec=WAIT_ARGUMENT_SPEC, supports_check_mode=True)
    module.fail_json(msg="llmops.inference.pod_wait runs as an action plugin: call it as a task, not as a module")


if __name__ == "__main__":
    main()
