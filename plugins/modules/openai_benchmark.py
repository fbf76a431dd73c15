#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: openai_benchmark
short_description: Benchmark an OpenAI-compatible endpoint over a concurrency sweep
version_added: 0.2.0
description:
  - Sends streamed C(/v1/chat/completions) requests at each concurrency level in turn, for O(duration_s)
    seconds or O(requests_per_level) requests per level, and reports per level the time to first token (TTFT),
    the time per output token after the first (TPOT) and the end-to-end latency at p50/p90/p99, requests/s and
    output tokens/s.
  - With O(output_dir) it writes C(<name>.json) (every number), C(<name>.csv) (one row per level) and
    C(<name>.svg) (throughput and latency charts) there, on the host the module runs on.
  - In check mode it lists the models and checks the sweep, but sends no load and writes nothing.
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
    description: The user message of every request (when O(prompts) is empty).
    type: str
    default: Write a short paragraph about the history of the printing press.
  prompts:
    description: User messages used in turn (several prompts exercise prefix caching and routing).
    type: list
    elements: str
    default: []
  max_tokens:
    description: Largest answer length of each request.
    type: int
    default: 128
  concurrency:
    description: Requests in flight at each level, swept in ascending order.
    type: list
    elements: int
    default: [1, 2, 4, 8, 16]
  duration_s:
    description:
      - Seconds each level sends requests (no request starts after them); 0 bounds by O(requests_per_level) only.
    type: float
    default: 30
  requests_per_level:
    description: Most requests of a level; 0 bounds by O(duration_s) only.
    type: int
    default: 0
  warmup_requests:
    description: Unmeasured requests sent first (a cold engine compiles on its first requests).
    type: int
    default: 1
  timeout:
    description: Seconds per HTTP request.
    type: int
    default: 300
  validate_certs:
    description: Check the TLS certificate of an https endpoint.
    type: bool
    default: true
  output_dir:
    description: Folder for the results files; empty writes none.
    type: path
    default: ""
  name:
    description: File name of the results (without extension); empty is C(benchmark-<model>-<UTC time>).
    type: str
    default: ""
  fail_on_error:
    description: Fail when any request failed; otherwise only a level where every request failed fails.
    type: bool
    default: false
author:
  - llmops.inference maintainers (@llmops)
"""

EXAMPLES = r"""
- name: Sweep 1 to 32 concurrent requests, 60 s each
  llmops.inference.openai_benchmark:
    base_url: https://r1.example.com
    api_key: "{{ api_key }}"
    model: deepseek-r1
    concurrency: [1, 2, 4, 8, 16, 32]
    duration_s: 60
    max_tokens: 256
    output_dir: /var/tmp/benchmarks
    name: r1-2x8-a800
"""

RETURN = r"""
results:
  description: The sweep (model, base_url, started, max_tokens, levels with one dict of numbers per concurrency).
  type: dict
  returned: success, not in check mode
files:
  description: Paths of the results files written (json, csv, svg).
  type: dict
  returned: when output_dir is set, not in check mode
table:
  description: The sweep as text lines.
  type: list
  elements: str
  returned: success, not in check mode
models:
  description: Model ids the endpoint lists.
  type: list
  elements: str
  returned: always
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.llmops.inference.plugins.module_utils import benchmark, openai_client
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError


def main():
    module = AnsibleModule(
        argument_spec=dict(
            base_url=dict(type="str", required=True),
            api_key=dict(type="str", default="", no_log=True),
            model=dict(type="str", default=""),
            prompt=dict(type="str", default="Write a short paragraph about the history of the printing press."),
            prompts=dict(type="list", elements="str", default=[]),
            max_tokens=dict(type="int", default=128, no_log=False),
            concurrency=dict(type="list", elements="int", default=[1, 2, 4, 8, 16]),
            duration_s=dict(type="float", default=30),
            requests_per_level=dict(type="int", default=0),
            warmup_requests=dict(type="int", default=1),
            timeout=dict(type="int", default=300),
            validate_certs=dict(type="bool", default=True),
            output_dir=dict(type="path", default=""),
            name=dict(type="str", default=""),
            fail_on_error=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        for name, low, high in (
            ("max_tokens", 1, 1 << 24),
            ("timeout", 1, 86400),
            ("requests_per_level", 0, 1 << 20),
            ("warmup_requests", 0, 1024),
        ):
            if not low <= params[name] <= high:
                raise LlmopsError("%s=%d must be between %d and %d" % (name, params[name], low, high))
        if not 0 <= params["duration_s"] <= 86400:
            raise LlmopsError("duration_s=%s must be between 0 and 86400" % params["duration_s"])
        benchmark.validate_sweep(params["concurrency"], params["duration_s"], params["requests_per_level"])
        endpoint = openai_client.Endpoint(
            params["base_url"], params["api_key"], params["timeout"], params["validate_certs"]
        )
        models = endpoint.models()
        model = params["model"] or (models[0] if models else "")
        if not model:
            raise LlmopsError("the endpoint lists no model")
        if params["model"] and params["model"] not in models:
            raise LlmopsError("model %s is not served; the endpoint lists %s" % (params["model"], ", ".join(models)))
        if module.check_mode:
            module.exit_json(changed=False, models=models, msg="check mode: no load sent, nothing written")
        result = benchmark.sweep(
            endpoint,
            model,
            params["prompts"] or [params["prompt"]],
            params["max_tokens"],
            params["concurrency"],
            params["duration_s"],
            params["requests_per_level"],
            params["warmup_requests"],
        )
        output = dict(changed=False, models=models, results=result, table=benchmark.table(result))
        if params["output_dir"]:
            name = params["name"] or "benchmark-%s-%s" % (
                "".join(c if c.isalnum() or c in "-_." else "-" for c in model).strip("."),
                time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
            )
            output["files"] = benchmark.write_results(result, params["output_dir"], name)
            output["changed"] = True
        failed = [
            row for row in result["levels"] if row["failed"] and (params["fail_on_error"] or not row["succeeded"])
        ]
        if failed:
            row = failed[0]
            module.fail_json(
                msg="%d of %d requests failed at concurrency %d: %s"
                % (row["failed"], row["requests"], row["concurrency"], "; ".join(row["errors"])),
                **output,
            )
    except LlmopsError as error:
        module.fail_json(msg=error.message)
    module.exit_json(**output)


if __name__ == "__main__":
    main()
