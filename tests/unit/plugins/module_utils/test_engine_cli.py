"""Every engine argv we emit, checked against the CLI recorded from the real engine package.

The schemas in tests/unit/fixtures/engine_cli/ were dumped by scripts/engine_cli/record.py from the real
argument parsers (SGLang ServerArgs.add_cli_args, vLLM's `vllm serve` parser) of the PyPI releases. Here no
engine is installed: the argv of every example inventory and of a matrix of plans is rendered through the
real builders (parallelism.plan, serving.server_manifests) for each image version and validated against the
schema of that version. The slow test at the end runs the real parser from the recorded venv (marked
``engine_cli_live``: scripts/test.sh deselects it, `make engine-cli-check` runs it).
"""

import copy
import os
import subprocess

import pytest
from serving_cases import case

from ansible_collections.llmops.inference.plugins.module_utils import engine_cli, serving
from ansible_collections.llmops.inference.plugins.module_utils.parallelism import plan as make_plan

SCHEMAS = engine_cli.schema_dir()
INVENTORY_CASES = (
    "local",
    "deepseek-r1-2x8-a800-sglang",
    "distill-1gpu",
    "qwen3-235b-vllm-tp8",
    "qwen3-235b-vllm-2node-ray",
)
IMAGES = {
    "sglang": ["docker.io/lmsysorg/sglang:v%s-cu129" % v for v in engine_cli.known_versions("sglang")],
    "vllm": ["docker.io/vllm/vllm-openai:v%s" % v for v in engine_cli.known_versions("vllm")],
}


def test_schemas_are_recorded_for_the_old_pins_and_the_current_releases():
    for engine, versions in (("sglang", ("0.5.6.post2", "0.5.23")), ("vllm", ("0.12.0", "0.33.0"))):
        for version in versions:
            schema = engine_cli.load_schema(engine, version)
            assert schema["version"] == version and len(schema["options"]) > 100
            assert "record.py" in schema["recorded_with"]


@pytest.mark.parametrize(
    "image, expected",
    [
        ("lmsysorg/sglang:v0.5.6.post2-cu129", ("sglang", "0.5.6.post2")),
        ("docker.io/lmsysorg/sglang:v0.5.23-cu130", ("sglang", "0.5.23")),
        ("harbor.local:5000/proxy/lmsysorg/sglang:v0.5.23", ("sglang", "0.5.23")),
        ("vllm/vllm-openai:v0.12.0", ("vllm", "0.12.0")),
        ("registry.cn-hangzhou.aliyuncs.com/mirror/vllm-openai:0.33.0", ("vllm", "0.33.0")),
        ("quay.io/ascend/vllm-ascend:v0.13.0rc1", ("vllm", "0.13.0rc1")),
        ("llmops.invalid/testbed/vllm-cpu:v0.32.0", ("vllm", "0.32.0")),
        ("public.ecr.aws/q9t5s3a7/vllm-cpu-release-repo:v0.32.0", ("vllm", "0.32.0")),
        ("lmsysorg/sglang:latest", ("sglang", None)),
        ("vllm/vllm-openai@sha256:" + "0" * 64, ("vllm", None)),
        ("docker.io/library/python:3.12-slim", (None, None)),
    ],
)
def test_image_tag_gives_the_engine_version(image, expected):
    assert engine_cli.image_version(image) == expected


def test_unknown_version_falls_back_to_the_newest_schema_with_a_warning():
    schema, warnings = engine_cli.schema_for("lmsysorg/sglang:v9.9.9")
    assert schema["version"] == engine_cli.known_versions("sglang")[-1]
    assert "no recorded sglang 9.9.9 CLI" in warnings[0]
    schema, warnings = engine_cli.schema_for("vllm/vllm-openai:v0.12.0")
    assert schema["version"] == "0.12.0" and warnings == []


def _rename_state(engine, rename):
    """(old accepted, new accepted) per recorded version, read from the schemas."""
    states = {}
    for version in engine_cli.known_versions(engine):
        index = engine_cli.Schema(engine_cli.load_schema(engine, version))
        if rename["kind"] == "value":
            option = index.lookup(rename["flag"])
            choices = [str(c) for c in (option.get("choices") or [])] if option else []
            deprecated = rename["old"] in index.deprecated_values.get(rename["flag"], {})
            old_ok = option is not None and (not choices or rename["old"] in choices) and not deprecated
            new_ok = option is not None and (not choices or rename["new"] in choices)
        else:
            old = index.lookup(rename["old"])
            old_ok = old is not None and not old.get("deprecated")
            new_ok = rename["kind"] == "removed" or index.lookup(rename["new"]) is not None
        states[version] = (old_ok, new_ok)
    return states


@pytest.mark.parametrize("rename", engine_cli.RENAMES, ids=lambda r: "%s-%s" % (r["engine"], r["old"]))
def test_every_rename_matches_the_recorded_schemas(rename):
    """The table says from which version the new spelling is needed; the schemas must agree."""
    for version, (old_ok, new_ok) in _rename_state(rename["engine"], rename).items():
        applies = engine_cli.parse_version(version) >= engine_cli.parse_version(rename["since"])
        if applies:
            assert new_ok, "%s %s: the table emits %s, which the recorded parser lacks" % (
                rename["engine"],
                version,
                rename.get("new"),
            )
        else:
            assert old_ok, "%s %s still needs %s but the table renames it" % (rename["engine"], version, rename["old"])


# --- the argv matrix -------------------------------------------------------------------------------

H100 = {"accelerator": "H100-80G", "accelerators_per_node": 8, "inter_node_link": "ib"}
PLANS = {
    "single": dict(H100, model="deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", nodes=1, tensor_parallel=1, data_parallel=1),
    "dp": dict(H100, model="deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", nodes=1, tensor_parallel=1, data_parallel=8),
    "tp-multi-node": dict(H100, model="deepseek-ai/DeepSeek-R1", nodes=2, tensor_parallel=16),
    "pp": dict(H100, model="Qwen/Qwen3-235B-A22B", nodes=2, tensor_parallel=8, pipeline_parallel=2),
    "fp8-kv": dict(H100, model="Qwen/Qwen3-32B", nodes=1, tensor_parallel=4, kv_cache_dtype="fp8"),
    "online-fp8": dict(H100, model="Qwen/Qwen3-32B", nodes=1, tensor_parallel=2, weight_dtype="fp8"),
}
SGLANG_ONLY = {
    # SGLang's default rule reserves DP-attention CUDA-graph room for batch 512 x 16 ranks; 128 makes it fit
    "dp-attention": dict(
        H100,
        model="deepseek-ai/DeepSeek-R1",
        nodes=2,
        tensor_parallel=16,
        attention_data_parallel=16,
        cuda_graph_max_bs=128,
    ),
    "ep": dict(H100, model="deepseek-ai/DeepSeek-R1", nodes=2, tensor_parallel=16, expert_parallel=16),
    # DeepSeek best practice: DP attention + EP + DeepEP over an all-to-all fabric (test_moe_plans.py)
    "deepep": dict(
        H100,
        model="deepseek-ai/DeepSeek-R1",
        nodes=2,
        tensor_parallel=16,
        expert_parallel=16,
        attention_data_parallel=16,
        cuda_graph_max_bs=128,
        fabric_shape="all-to-all",
    ),
    "mtp": dict(H100, model="deepseek-ai/DeepSeek-R1", nodes=2, tensor_parallel=16, speculative_mtp=True),
}
VLLM_ONLY = {
    "dp-ep-multi-node": dict(
        H100, model="deepseek-ai/DeepSeek-R1", nodes=2, tensor_parallel=8, data_parallel=2, expert_parallel=16
    ),
    "ep": dict(H100, model="Qwen/Qwen3-235B-A22B", nodes=1, tensor_parallel=8, expert_parallel=8),
    # multi-node DP + EP without Ray (headless workers), DeepEP from the fabric, MTP
    "dp-ep-deepep-headless": dict(
        H100,
        model="deepseek-ai/DeepSeek-R1",
        nodes=2,
        tensor_parallel=8,
        data_parallel=2,
        expert_parallel=16,
        fabric_shape="all-to-all",
        speculative_mtp=True,
    ),
    "mtp": dict(
        H100, model="deepseek-ai/DeepSeek-R1", accelerator="H200-141G", tensor_parallel=8, speculative_mtp=True
    ),
}
OPTIONS = {
    "sglang": {
        "prefix_caching": False,
        "chunked_prefill": True,
        "chunked_prefill_size": 4096,
        "reasoning_parser": "deepseek-r1",
        "tool_call_parser": "qwen25",
        "enable_metrics": True,
        "extra_args": ["--max-running-requests", "64", "--trust-remote-code"],
    },
    "vllm": {
        "prefix_caching": True,
        "chunked_prefill": True,
        "chunked_prefill_size": 8192,
        "reasoning_parser": "deepseek_r1",
        "tool_call_parser": "hermes",
        "enable_metrics": True,
        "extra_args": ["--max-num-seqs", "128", "--trust-remote-code"],
    },
}


def _matrix():
    for engine in ("sglang", "vllm"):
        shapes = dict(PLANS, **(SGLANG_ONLY if engine == "sglang" else VLLM_ONLY))
        for name, request in sorted(shapes.items()):
            for image in IMAGES[engine]:
                yield pytest.param(engine, name, request, image, id="%s-%s-%s" % (engine, name, image.split(":")[-1]))


def engine_argvs(objects):
    """Every engine argv in the rendered objects (leader, workers, single pods)."""
    found = []
    for obj in objects:
        spec = obj.get("spec", {})
        templates = [spec.get("template")]
        lws = spec.get("leaderWorkerTemplate") or {}
        templates += [lws.get("leaderTemplate"), lws.get("workerTemplate")]
        for template in templates:
            for container in ((template or {}).get("spec") or {}).get("containers", []):
                argv = engine_cli.command_argv(container["command"])
                if argv is not None:
                    found.append(engine_cli.engine_flags(argv))
    return found


def render(engine, request, image, options):
    config, _plan, cache = case("local" if engine == "sglang" else "distill-1gpu")
    config = copy.deepcopy(config)
    config.update(engine=engine, image=image, options=copy.deepcopy(options), memory="", cpu="")
    # the plan follows the image's release (its memory rule); the serving builder refuses a mismatch
    plan = make_plan(dict(request, engine=engine, engine_image=image))
    assert plan["fits"], plan["reasons"]
    if plan.get("moe_all_to_all") == "deepep" and plan["nodes"] > 1:
        # what prepare_nodes hands the pods from rdma_check's facts on RoCE (NVSHMEM's env is derived from it)
        config["nccl_env"] = {"NCCL_IB_DISABLE": "0", "NCCL_IB_HCA": "=mlx5_0:1,mlx5_1:1", "NCCL_IB_GID_INDEX": "3"}
    layout = dict(cache["layout"])
    if plan["nodes"] > 1:
        layout = case("deepseek-r1-2x8-a800-sglang")[2]["layout"]
    return plan, serving.server_manifests(config, plan, layout)


@pytest.mark.parametrize("engine, shape, request_, image", list(_matrix()))
def test_plan_matrix_argv_is_accepted_by_the_target_version(engine, shape, request_, image):
    schema, warnings = engine_cli.schema_for(image)
    assert warnings == []
    plan, objects = render(engine, request_, image, OPTIONS[engine])
    argvs = engine_argvs(objects)
    assert argvs, "no engine argv rendered"
    for argv in argvs:
        assert engine_cli.validate_argv(schema, argv) == [], argv


@pytest.mark.parametrize("image", IMAGES["vllm"])
def test_vllm_dp_ep_workers_run_headless_with_the_fabrics_all_to_all(image):
    """The leader serves the API with DP ranks 0..n-1; each worker runs its own ranks --headless (no Ray)."""
    _plan, objects = render("vllm", VLLM_ONLY["dp-ep-deepep-headless"], image, OPTIONS["vllm"])
    lws = [obj for obj in objects if obj["kind"] == "LeaderWorkerSet"][0]["spec"]["leaderWorkerTemplate"]
    leader = lws["leaderTemplate"]["spec"]["containers"][0]["command"]
    worker = lws["workerTemplate"]["spec"]["containers"][0]["command"]
    leader_argv, worker_argv = engine_cli.command_argv(leader), engine_cli.command_argv(worker)
    assert "--headless" in worker_argv and "--headless" not in leader_argv
    # internal load balancing: only the headless workers carry a start rank
    assert "--data-parallel-start-rank" in worker_argv and "--data-parallel-start-rank" not in leader_argv
    for argv in (leader_argv, worker_argv):
        assert argv[argv.index("--all2all-backend") + 1] == "deepep_low_latency"
        assert "ray" not in argv
    assert "ray start" not in leader[-1] and "ray start" not in worker[-1]


@pytest.mark.parametrize("inventory", INVENTORY_CASES)
def test_every_inventory_argv_is_accepted_by_its_image_and_the_current_release(inventory):
    config, plan, cache = case(inventory)
    images = [config["image"]] + IMAGES[config["engine"]]
    for image in images:
        config = dict(config, image=image)
        schema, _warnings = engine_cli.schema_for(image)
        for argv in engine_argvs(serving.server_manifests(config, plan, cache["layout"])):
            assert engine_cli.validate_argv(schema, argv) == [], (image, argv)


def test_ascend_inventory_argv_is_accepted_by_the_vllm_its_image_runs():
    """vllm-ascend adds no CLI options of its own (its 0.13.0 wheel has no add_argument): its image runs the
    `vllm serve` parser of the same vLLM release, so the vLLM schema of that version checks it."""
    config, plan, cache = case("ascend-910b")
    image = "quay.io/ascend/vllm-ascend:v0.13.0"
    config = dict(config, image=image, accelerator_resource="huawei.com/Ascend910")
    schema, warnings = engine_cli.schema_for(image)
    if "0.13.0" in engine_cli.known_versions("vllm"):
        assert schema["version"] == "0.13.0" and warnings == []
    for argv in engine_argvs(serving.server_manifests(config, plan, cache["layout"])):
        assert engine_cli.validate_argv(schema, argv) == [], argv


@pytest.mark.parametrize(
    "engine, planted, expected",
    [
        ("sglang", ["--no-such-flag"], "unknown flag --no-such-flag"),
        ("sglang", ["--max-running-requests", "many"], "--max-running-requests takes an integer"),
        ("sglang", ["--load-format", "nonsense"], "is not one of its choices"),
        ("vllm", ["--no-such-flag", "1"], "unknown flag --no-such-flag"),
        ("vllm", ["--max-num-seqs", "x"], "--max-num-seqs takes an integer"),
        ("vllm", ["--quantization", "nonsense"], "--quantization 'nonsense' is not one of its choices"),
    ],
)
def test_a_planted_bad_flag_fails_validation(engine, planted, expected):
    image = IMAGES[engine][-1]
    options = dict(OPTIONS[engine], extra_args=planted)
    _plan, objects = render(engine, PLANS["single"], image, options)
    schema, _warnings = engine_cli.schema_for(image)
    problems = [p for argv in engine_argvs(objects) for p in engine_cli.validate_argv(schema, argv)]
    assert any(expected in problem for problem in problems), problems
    version = engine_cli.image_version(image)[1]
    assert all(("%s %s" % (engine, version)) in problem for problem in problems)


def test_a_planted_deprecated_flag_fails_validation():
    """--enable-dp-attention is deprecated in SGLang 0.5.23 (the builder writes --attn-dp-size there)."""
    schema = engine_cli.load_schema("sglang", "0.5.23")
    problems = engine_cli.validate_argv(schema, ["--tp-size", "16", "--dp-size", "16", "--enable-dp-attention"])
    assert problems == ["sglang 0.5.23: --enable-dp-attention is deprecated (use --attn-dp-size <dp-size>)"]
    old = engine_cli.load_schema("sglang", "0.5.6.post2")
    assert engine_cli.validate_argv(old, ["--tp-size", "16", "--dp-size", "16", "--enable-dp-attention"]) == []


def test_the_builder_emits_each_versions_spelling():
    request = SGLANG_ONLY["dp-attention"]
    old = render("sglang", request, "lmsysorg/sglang:v0.5.6.post2-cu129", OPTIONS["sglang"])[1]
    new = render("sglang", request, "lmsysorg/sglang:v0.5.23-cu129", OPTIONS["sglang"])[1]
    old_argv, new_argv = engine_argvs(old)[0], engine_argvs(new)[0]
    assert old_argv[old_argv.index("--dp-size") + 1] == "16" and "--enable-dp-attention" in old_argv
    assert new_argv[new_argv.index("--attn-dp-size") + 1] == "16"
    assert "--enable-dp-attention" not in new_argv and "--dp-size" not in new_argv
    assert new_argv[new_argv.index("--tool-call-parser") + 1] == "qwen"


@pytest.mark.engine_cli_live
@pytest.mark.parametrize("engine", ["sglang", "vllm"])
def test_real_parser_accepts_the_argv(engine):
    """Runs the real parser of every recorded version from its venv (scripts/engine_cli/record.py made it)."""
    script = os.path.join(os.path.dirname(SCHEMAS), "..", "..", "..", "scripts", "engine_cli", "dump_parser.py")
    for image in IMAGES[engine]:
        version = engine_cli.image_version(image)[1]
        python = os.path.join(engine_cli_cache(), "%s-%s" % (engine, version), "bin", "python")
        assert os.path.exists(python), "no recorded venv %s (make engine-cli ENGINE=%s VERSION=%s)" % (
            python,
            engine,
            version,
        )
        request = PLANS["single"]
        argvs = engine_argvs(render(engine, request, image, OPTIONS[engine])[1])
        for argv in argvs:
            result = subprocess.run(
                [python, os.path.abspath(script), engine, "--parse", *argv],
                capture_output=True,
                text=True,
                check=False,
            )
            assert result.returncode == 0, result.stderr[-3000:]


def engine_cli_cache():
    return os.path.join(os.path.expanduser("~"), ".cache", "llmops-inference", "engine-cli")
