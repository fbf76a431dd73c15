#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: openai_check
short_description: Smoke-test (and optionally load-test) an OpenAI-compatible endpoint
version_added: 0.1.0
description:
  - Lists C(/v1/models), sends one C(/v1/chat/completions) request with the API key and reports the answer
    and the latency. With O(load_test_requests) above 0 it also sends that many streamed requests and reports
    time to first token and tokens per second.
  - Only reads; safe in check mode.
options:
  base_url:
    description: Base URL of the endpoint, with or without the trailing C(/v1).
    type: str
    required: true
  api_key:
    description: Bearer key; empty for an endpoint without authentication.
    type: str
    default: ""
  model:
    description: Served model name; empty picks the first one C(/v1/models) lists.
    type: str
    default: ""
  prompt:
    description: The user message sent.
    type: str
    default: Say hello in one short sentence.
  max_tokens:
    description: Largest answer length.
    type: int
    default: 64
  timeout:
    description: Seconds per HTTP request.
    type: int
    default: 300
  validate_certs:
    description: Check the TLS certificate of an https endpoint.
    type: bool
    default: true
  load_test_requests:
    description: Streamed requests of the load test; 0 skips it.
    type: int
    default: 0
  load_test_concurrency:
    description: Requests in flight at once during the load test.
    type: int
    default: 4
author:
  - llmops.inference maintainers (@llmops)
"""

EXAMPLES = r"""
- name: Check the endpoint
  llmops.inference.openai_check:
    base_url: https://r1.example.com
    api_key: "{{ api_key }}"
    model: deepseek-r1
    load_test_requests: 16
"""

RETURN = r"""
models:
  description: Model ids the endpoint lists.
  type: list
  elements: str
  returned: always
answer:
  description: The answer to the prompt.
  type: str
  returned: always
latency_s:
  description: Seconds the chat completion took.
  type: float
  returned: always
usage:
  description: The completion's token usage as reported by the engine.
  type: dict
  returned: always
load_test:
  description: Load test summary (requests, succeeded, failed, ttft_p50_s, ttft_p95_s, output_tokens_per_s, ...).
  type: dict
  returned: when load_test_requests > 0
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.llmops.inference.plugins.module_utils import openai_client
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError


def main():
    module = AnsibleModule(
        argument_spec=dict(
            base_url=dict(type="str", required=True),
            api_key=dict(type="str", default="", no_log=True),
            model=dict(type="str", default=""),
            prompt=dict(type="str", default="Say hello in one short sentence."),
            max_tokens=dict(type="int", default=64, no_log=False),
            timeout=dict(type="int", default=300),
            validate_certs=dict(type="bool", default=True),
            load_test_requests=dict(type="int", default=0),
            load_test_concurrency=dict(type="int", default=4),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        limits = (
            ("max_tokens", 1, 1 << 24),
            ("timeout", 1, 86400),
            ("load_test_requests", 0, 1 << 20),
            ("load_test_concurrency", 1, 1024),
        )
        for name, low, high in limits:
            if not low <= params[name] <= high:
                raise LlmopsError("%s=%d must be between %d and %d" % (name, params[name], low, high))
        endpoint = openai_client.Endpoint(
            params["base_url"], params["api_key"], params["timeout"], params["validate_certs"]
        )
        models = endpoint.models()
        model = params["model"] or (models[0] if models else "")
        if not model:
            raise LlmopsError("the endpoint lists no model")
        if params["model"] and params["model"] not in models:
            raise LlmopsError("model %s is not served; the endpoint lists %s" % (params["model"], ", ".join(models)))
        answer, latency, usage = endpoint.chat(model, params["prompt"], params["max_tokens"])
        result = dict(changed=False, models=models, answer=answer, latency_s=round(latency, 3), usage=usage)
        if params["load_test_requests"] > 0:
            result["load_test"] = openai_client.load_test(
                endpoint,
                model,
                params["prompt"],
                params["max_tokens"],
                params["load_test_requests"],
                params["load_test_concurrency"],
            )
    except LlmopsError as error:
        module.fail_json(msg=error.message)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
