# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action of llmops.inference.pod_wait (documented in plugins/modules/pod_wait.py).

An action rather than a module with ``until``: it prints a progress line while it waits (an engine group can
load for 40 minutes), which a retried task cannot. The loop is module_utils/pod_wait.wait_for_pods; this file
only reads the pods and log lines through kubernetes.core.k8s_info / k8s_log on the task's host.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.llmops.inference.plugins.module_utils import pod_wait
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

display = Display()


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        _validation, args = self.validate_argument_spec(argument_spec=pod_wait.WAIT_ARGUMENT_SPEC)
        if args["timeout"] < 1 or args["poll_seconds"] < 1 or args["progress_seconds"] < 1 or args["expected"] < 0:
            result.update(failed=True, msg="timeout, poll_seconds and progress_seconds must be >= 1, expected >= 0")
            return result
        connection = {"kubeconfig": args["kubeconfig"]} if args["kubeconfig"] else {}
        host = task_vars.get("inventory_hostname", "") if task_vars else ""

        def read_pods():
            found = self._execute_module(
                module_name="kubernetes.core.k8s_info",
                module_args=dict(
                    connection, kind="Pod", namespace=args["namespace"], label_selectors=args["label_selectors"]
                ),
                task_vars=task_vars,
            )
            if found.get("failed"):
                raise LlmopsError("reading the pods failed: %s" % found.get("msg", found))
            return found.get("resources") or []

        def read_last_line(pod, container):
            found = self._execute_module(
                module_name="kubernetes.core.k8s_log",
                module_args=dict(connection, namespace=args["namespace"], name=pod, container=container, tail_lines=1),
                task_vars=task_vars,
            )
            return "" if found.get("failed") else str(found.get("log") or "").strip()

        def show(text):
            # stderr: the terminal shows it as the wait goes on, and a machine-read stdout (the json callback,
            # AWX's event stream) stays one document.
            display.display("  [%s] %s" % (host, text) if host else "  " + text, stderr=True)

        try:
            state, pods, polls, elapsed = pod_wait.wait_for_pods(read_pods, read_last_line, show, args)
        except LlmopsError as error:
            result.update(failed=True, msg=error.message)
            return result
        result.update(changed=False, state=state, resources=pods, polls=polls, elapsed=int(elapsed))
        return result
