"""awx_config: the controller survey and workflow built from the catalogs, and the awx_configure role's
awx.awx task arguments checked against the real argument specs of the bundled awx.awx modules."""

import importlib
import itertools
import os

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from awx_survey_schema import validate_answers, validate_spec

from ansible_collections.llmops.inference.plugins.module_utils import (
    accelerator_catalog,
    awx_config,
    model_cache,
    model_catalog,
    parallelism,
)
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
ROLE = os.path.join(ROOT, "roles", "awx_configure")


def _question(spec, variable):
    return next(q for q in spec["spec"] if q["variable"] == variable)


def _choices(question):
    return question["choices"].split("\n")


# --- survey spec --------------------------------------------------------------------------------------


def test_default_survey_is_accepted_by_the_controller_schema():
    spec = awx_config.survey_spec()
    assert validate_spec(spec) == []
    assert [q["variable"] for q in spec["spec"]] == [
        "llmops_model_id",
        "llmops_engine",
        "llmops_accelerator",
        "llmops_accelerators_per_node",
        "llmops_nodes",
        "serving_plan_context_length",
        "llmops_replicas",
        "llmops_model_source",
        "llmops_registry_mirror",
        "model_cache_hf_endpoint",
        "model_cache_modelscope_domain",
    ]
    # the answers the controller passes when nobody changes a default are accepted too
    assert validate_answers(spec, awx_config.survey_defaults(spec)) == []


def test_choices_are_exactly_the_catalogs():
    spec = awx_config.survey_spec()
    assert _choices(_question(spec, "llmops_model_id")) == sorted(model_catalog.MODELS)
    assert _choices(_question(spec, "llmops_accelerator")) == sorted(accelerator_catalog.ACCELERATORS)
    assert _choices(_question(spec, "llmops_engine")) == list(parallelism.ENGINES)
    assert set(_choices(_question(spec, "llmops_model_source"))) <= set(model_cache.SOURCES)
    # every offered model is one the planner resolves without a local config.json
    for model in _choices(_question(spec, "llmops_model_id")):
        assert model_catalog.get(model)[0] == model
    context = _question(spec, "serving_plan_context_length")
    assert context["max"] == max(
        int(entry["config"].get("max_position_embeddings") or 0) for entry in model_catalog.MODELS.values()
    )


def test_defaults_are_resolved_and_checked_against_the_catalog():
    spec = awx_config.survey_spec({"model": "deepseek-r1", "accelerator": "h20", "accelerators_per_node": "8"})
    assert _question(spec, "llmops_model_id")["default"] == "deepseek-ai/DeepSeek-R1"
    assert _question(spec, "llmops_accelerator")["default"] == "H20-96G"
    assert _question(spec, "llmops_accelerators_per_node")["default"] == 8
    assert validate_spec(spec) == []
    with pytest.raises(LlmopsError, match="not one of the choices"):
        awx_config.survey_spec({"model": "mistralai/Mixtral-8x7B"})
    with pytest.raises(LlmopsError, match="integer from 1 to 64"):
        awx_config.survey_spec({"nodes": 0})
    with pytest.raises(LlmopsError, match="unknown survey defaults"):
        awx_config.survey_spec({"gpu": "A100"})
    with pytest.raises(LlmopsError, match="unknown model sources"):
        awx_config.survey_spec(model_sources=["ftp"])
    with pytest.raises(LlmopsError, match="unknown survey questions"):
        awx_config.survey_spec(questions=["model", "colour"])


def test_s3_is_offered_only_when_asked():
    assert "s3" not in _choices(_question(awx_config.survey_spec(), "llmops_model_source"))
    spec = awx_config.survey_spec(model_sources=["huggingface", "s3"])
    assert _choices(_question(spec, "llmops_model_source")) == ["huggingface", "s3"]


def test_question_subset_keeps_the_order_given():
    spec = awx_config.survey_spec(questions=["engine", "model"])
    assert [q["variable"] for q in spec["spec"]] == ["llmops_engine", "llmops_model_id"]
    assert validate_spec(spec) == []


def test_the_schema_checker_catches_what_the_controller_refuses():
    """The restated controller rules are not a rubber stamp: each of these is an AWX 400."""
    good = awx_config.survey_spec()
    broken = [
        dict(good, spec=[]),
        dict(good, spec=good["spec"] + [dict(good["spec"][0])]),  # duplicated variable
        dict(good, spec=[dict(good["spec"][3], default="8")]),  # integer question, string default
        dict(good, spec=[dict(good["spec"][0], default="gpt-5")]),  # default not among the choices
        dict(good, spec=[dict(good["spec"][3], max="16")]),  # max not an integer
        dict(good, spec=[dict(good["spec"][0], required="yes")]),
    ]
    for spec in broken:
        assert validate_spec(spec), spec["spec"][:1]
    assert validate_answers(good, {"llmops_nodes": 65}) != []
    assert validate_answers(good, dict(awx_config.survey_defaults(good), llmops_nodes="2")) != []
    assert validate_answers(good, dict(awx_config.survey_defaults(good), llmops_model_id="gpt-5")) != []
    assert validate_answers(good, dict(awx_config.survey_defaults(good), llmops_registry_mirror="x" * 256)) != []


# --- every answer the survey allows reaches the planner as a valid request ---------------------------

PER_NODE = (1, 2, 4, 8, 16)
NODES = (1, 2, 4)


def test_every_survey_combination_is_planned_or_refused_with_reasons():
    """Model x accelerator x engine x accelerators per node x nodes (the answers that change the plan):
    the planner either plans it or refuses it with the reasons (the plan step's clean failure, before
    anything is applied); no combination the survey allows makes it raise anything else."""
    spec = awx_config.survey_spec()
    models = _choices(_question(spec, "llmops_model_id"))
    accelerators = _choices(_question(spec, "llmops_accelerator"))
    engines = _choices(_question(spec, "llmops_engine"))
    fits = refused = 0
    for model, accelerator, engine, per_node, nodes in itertools.product(
        models, accelerators, engines, PER_NODE, NODES
    ):
        answers = dict(
            awx_config.survey_defaults(spec),
            llmops_model_id=model,
            llmops_accelerator=accelerator,
            llmops_engine=engine,
            llmops_accelerators_per_node=per_node,
            llmops_nodes=nodes,
        )
        assert validate_answers(spec, answers) == []
        request = {
            "model": model,
            "accelerator": accelerator,
            "engine": engine,
            "accelerators_per_node": per_node,
            "nodes": nodes,
            "fail_on_no_fit": False,
        }
        try:
            result = parallelism.plan(request)
        except LlmopsError as error:
            assert error.message
            refused += 1
            continue
        if result["fits"]:
            fits += 1
            assert result["engine_args"]
        else:
            assert result["reasons"], request
            refused += 1
    assert fits > 100 and refused > 100, (fits, refused)


# --- workflow -------------------------------------------------------------------------------------------


def test_workflow_chains_the_stages_on_success_only():
    nodes = awx_config.workflow_nodes([{"name": "preflight"}, {"name": "serve"}, {"name": "verify"}], "org", "llmops")
    assert [n["identifier"] for n in nodes] == ["preflight", "serve", "verify"]
    assert [n["related"] for n in nodes] == [
        {"success_nodes": [{"identifier": "serve"}]},
        {"success_nodes": [{"identifier": "verify"}]},
        {"success_nodes": []},
    ]
    assert nodes[1]["unified_job_template"] == {
        "name": "llmops serve",
        "type": "job_template",
        "organization": {"name": "org"},
    }
    with pytest.raises(LlmopsError, match="repeat"):
        awx_config.workflow_nodes([{"name": "serve"}, {"name": "serve"}], "org", "llmops")
    with pytest.raises(LlmopsError, match="at least one stage"):
        awx_config.workflow_nodes([], "org", "llmops")


# --- the role's awx.awx tasks against the real module argument specs ----------------------------------


class _Captured(Exception):
    pass


def awx_module_spec(name):
    """argument_spec and constraints of awx.awx.<name>, as its main() hands them to ControllerAPIModule
    (captured at construction, before anything connects), plus the connection options every module takes."""
    module = importlib.import_module("ansible_collections.awx.awx.plugins.modules.%s" % name)
    base = module.ControllerAPIModule
    captured = {}

    def capture(self, argument_spec=None, **kwargs):
        spec = dict(base.AUTH_ARGSPEC)
        spec.update(argument_spec or {})
        captured.update(spec=spec, kwargs=kwargs)
        raise _Captured()

    original = base.__init__
    base.__init__ = capture
    try:
        module.main()
    except _Captured:
        pass
    finally:
        base.__init__ = original
    return captured["spec"], captured["kwargs"]


SAMPLES = {
    "str": "x",
    "bool": True,
    "int": 1,
    "float": 1.0,
    "list": [],
    "dict": {},
    "raw": "x",
    "path": "/x",
    None: "x",
}


def _tasks(tasks, defaults=None):
    for task in tasks:
        merged = dict(defaults or {})
        for group, args in (task.get("module_defaults") or {}).items():
            merged.update(args if group == "group/awx.awx.controller" else {})
        if "block" in task:
            yield from _tasks(task["block"], merged)
            continue
        for key, value in task.items():
            if key.startswith("awx.awx."):
                yield task["name"], key.split(".")[-1], dict(merged, **(value or {}))


def _awx_tasks():
    with open(os.path.join(ROLE, "tasks", "main.yml")) as handle:
        return list(_tasks(yaml.safe_load(handle)))


def test_role_uses_the_awx_modules_it_should():
    modules = sorted({module for _name, module, _args in _awx_tasks()})
    assert modules == [
        "credential",
        "credential_type",
        "execution_environment",
        "inventory",
        "inventory_source",
        "job_template",
        "organization",
        "project",
        "workflow_job_template",
    ]


@pytest.mark.parametrize(
    "task_name,module,args", _awx_tasks(), ids=lambda value: value if isinstance(value, str) else ""
)
def test_task_arguments_match_the_module_argument_spec(task_name, module, args):
    spec, constraints = awx_module_spec(module)
    params = {}
    for key, value in args.items():
        # an option without settings is an empty dict (a string option), hence the explicit `in`
        option = spec[key] if key in spec else next((o for o in spec.values() if key in (o.get("aliases") or [])), None)
        assert option is not None, "%s: awx.awx.%s has no option %s" % (task_name, module, key)
        templated = isinstance(value, str) and "{{" in value
        # a templated value is checked for its name (and below for required/exclusive options) with a
        # sample of the option's type; a literal one is validated as it is (type, choices)
        params[key] = SAMPLES[option.get("type", "str")] if templated else value
        if option.get("choices") and templated:
            params[key] = option["choices"][0]
    validator = ArgumentSpecValidator(
        spec,
        mutually_exclusive=constraints.get("mutually_exclusive"),
        required_together=constraints.get("required_together"),
        required_one_of=constraints.get("required_one_of"),
        required_if=constraints.get("required_if"),
        required_by=constraints.get("required_by"),
    )
    result = validator.validate(params)
    assert not result.error_messages, "%s (awx.awx.%s): %s" % (task_name, module, result.error_messages)


def test_secret_carrying_tasks_are_no_log():
    with open(os.path.join(ROLE, "tasks", "main.yml")) as handle:
        tasks = yaml.safe_load(handle)
    block = next(task for task in tasks if "block" in task)["block"]
    credential = next(task for task in block if "awx.awx.credential" in task)
    assert credential.get("no_log") is True
