# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""AWX / Automation Controller configuration: survey specs built from the catalogs, the workflow graph.

The choices of a survey come from the same tables the planner reads (model_catalog, accelerator_catalog,
the engines and model sources of the serving code), so a survey can never offer a model, accelerator or
engine the planner does not know. Whether a chosen combination fits is the planner's call: it refuses a
plan that does not fit, with the numbers, in the plan step before anything is applied.

The spec follows the controller's survey schema (awx/api/views JobTemplateSurveySpec._validate_spec_data):
``name``, ``description``, ``spec`` (a non-empty list); each question has ``type``, ``question_name``,
``variable`` (strings) and ``required`` (bool); integer defaults are ints, min/max are ints, a
multiplechoice question lists its choices (newline-separated) and its default is one of them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.llmops.inference.plugins.module_utils import accelerator_catalog, model_catalog
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError
from ansible_collections.llmops.inference.plugins.module_utils.model_cache import SOURCES as MODEL_SOURCES
from ansible_collections.llmops.inference.plugins.module_utils.parallelism import ENGINES

# Bounds of the integer questions. Nodes and accelerators per node cover the largest layouts the
# planner is tested with (DeepSeek-R1 on 4 x 8 A800, 8 x 16 Ascend); the planner refuses what does not fit.
LIMITS = {
    "accelerators_per_node": (1, 16),
    "nodes": (1, 64),
    "replicas": (1, 64),
}

QUESTIONS = (
    "model",
    "engine",
    "accelerator",
    "accelerators_per_node",
    "nodes",
    "context_length",
    "replicas",
    "model_source",
    "registry_mirror",
    "hf_endpoint",
    "modelscope_domain",
)

DEFAULTS = {
    "model": "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
    "engine": "sglang",
    "accelerator": "A100-80G",
    "accelerators_per_node": 1,
    "nodes": 1,
    "context_length": 0,
    "replicas": 1,
    "model_source": "huggingface",
    "registry_mirror": "",
    "hf_endpoint": "",
    "modelscope_domain": "",
}

# Text answers are host names or URLs: bounded so a paste of something else is refused by the controller.
TEXT_MAX = 255


def model_choices():
    return sorted(model_catalog.MODELS)


def accelerator_choices():
    return sorted(accelerator_catalog.ACCELERATORS)


def max_context_length():
    """The longest context any catalog model declares (config.json max_position_embeddings)."""
    return max(int(entry["config"].get("max_position_embeddings") or 0) for entry in model_catalog.MODELS.values())


def _choice(name, variable, choices, default, description):
    if default not in choices:
        raise LlmopsError(
            "survey default %r for %s is not one of the choices the catalog offers: %s"
            % (default, variable, ", ".join(choices))
        )
    return {
        "type": "multiplechoice",
        "question_name": name,
        "question_description": description,
        "variable": variable,
        "required": True,
        "choices": "\n".join(choices),
        "default": default,
    }


def _integer(name, variable, minimum, maximum, default, description):
    if not isinstance(default, int) or isinstance(default, bool) or not minimum <= default <= maximum:
        raise LlmopsError(
            "survey default %r for %s must be an integer from %d to %d" % (default, variable, minimum, maximum)
        )
    return {
        "type": "integer",
        "question_name": name,
        "question_description": description,
        "variable": variable,
        "required": True,
        "min": minimum,
        "max": maximum,
        "default": default,
    }


def _text(name, variable, default, description):
    if not isinstance(default, str) or len(default) > TEXT_MAX:
        raise LlmopsError("survey default for %s must be a string of at most %d characters" % (variable, TEXT_MAX))
    return {
        "type": "text",
        "question_name": name,
        "question_description": description,
        "variable": variable,
        "required": False,
        "min": 0,
        "max": TEXT_MAX,
        "default": default,
    }


def _int_default(defaults, key):
    value = defaults[key]
    # Values from YAML inventories may arrive as strings ("8"); the controller wants an int default.
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value


def survey_spec(defaults=None, questions=None, model_sources=None, name="llmops.inference", description=""):
    """The survey of the serve/workflow templates: one question per main knob, choices from the catalogs.

    ``defaults`` overrides DEFAULTS (keys of QUESTIONS); ``questions`` picks and orders the questions
    (all by default); ``model_sources`` restricts the model source choices (``s3`` needs the S3 URI and
    credentials in the inventory, so it is only offered when the caller says so).
    """
    values = dict(DEFAULTS)
    unknown = sorted(set(defaults or {}) - set(DEFAULTS))
    if unknown:
        raise LlmopsError("unknown survey defaults %s; known: %s" % (", ".join(unknown), ", ".join(QUESTIONS)))
    values.update(defaults or {})
    sources = list(model_sources) if model_sources else [s for s in MODEL_SOURCES if s != "s3"]
    bad_sources = [s for s in sources if s not in MODEL_SOURCES]
    if bad_sources:
        raise LlmopsError(
            "unknown model sources %s; the model cache knows %s" % (", ".join(bad_sources), ", ".join(MODEL_SOURCES))
        )
    selected = list(questions) if questions else list(QUESTIONS)
    unknown = [q for q in selected if q not in QUESTIONS]
    if unknown:
        raise LlmopsError("unknown survey questions %s; known: %s" % (", ".join(unknown), ", ".join(QUESTIONS)))
    # The model's catalog id; an alias or org-less name given as the default resolves to the id.
    model = model_catalog.resolve(values["model"]) or values["model"]
    accelerator = accelerator_catalog.resolve(values["accelerator"]) or values["accelerator"]
    builders = {
        "model": lambda: _choice(
            "Model",
            "llmops_model_id",
            model_choices(),
            model,
            "Model to serve (catalog id; the planner sizes the parallelism for it).",
        ),
        "engine": lambda: _choice("Engine", "llmops_engine", list(ENGINES), values["engine"], "Inference engine."),
        "accelerator": lambda: _choice(
            "Accelerator",
            "llmops_accelerator",
            accelerator_choices(),
            accelerator,
            "GPU/NPU model of the serving nodes.",
        ),
        "accelerators_per_node": lambda: _integer(
            "Accelerators per node",
            "llmops_accelerators_per_node",
            LIMITS["accelerators_per_node"][0],
            LIMITS["accelerators_per_node"][1],
            _int_default(values, "accelerators_per_node"),
            "GPUs/NPUs one serving pod gets on each node.",
        ),
        "nodes": lambda: _integer(
            "Nodes",
            "llmops_nodes",
            LIMITS["nodes"][0],
            LIMITS["nodes"][1],
            _int_default(values, "nodes"),
            "Nodes one server spans (more than one: a LeaderWorkerSet group).",
        ),
        "context_length": lambda: _integer(
            "Context length",
            "serving_plan_context_length",
            0,
            max_context_length(),
            _int_default(values, "context_length"),
            "Context length to serve in tokens; 0 serves the longest that fits. The planner refuses one "
            "longer than the model allows.",
        ),
        "replicas": lambda: _integer(
            "Replicas",
            "llmops_replicas",
            LIMITS["replicas"][0],
            LIMITS["replicas"][1],
            _int_default(values, "replicas"),
            "Copies of the server (each spans the plan's nodes).",
        ),
        "model_source": lambda: _choice(
            "Model source",
            "llmops_model_source",
            sources,
            values["model_source"],
            "Where the model cache downloads the model from.",
        ),
        "registry_mirror": lambda: _text(
            "Registry mirror",
            "llmops_registry_mirror",
            values["registry_mirror"],
            "Registry host[/prefix] every image is pulled from instead of its upstream registry (empty: upstream).",
        ),
        "hf_endpoint": lambda: _text(
            "Hugging Face mirror",
            "model_cache_hf_endpoint",
            values["hf_endpoint"],
            "Hugging Face mirror URL such as https://hf-mirror.com (empty: huggingface.co).",
        ),
        "modelscope_domain": lambda: _text(
            "ModelScope domain",
            "model_cache_modelscope_domain",
            values["modelscope_domain"],
            "ModelScope mirror domain (empty: modelscope.cn).",
        ),
    }
    return {
        "name": name,
        "description": description or "Main knobs of the llmops.inference serving stack",
        "spec": [builders[q]() for q in selected],
    }


def survey_defaults(spec):
    """The extra_vars the controller passes when every question keeps its default (empty text dropped)."""
    answers = {}
    for question in spec["spec"]:
        default = question.get("default")
        if question["type"] == "text" and default == "":
            continue
        answers[question["variable"]] = default
    return answers


def workflow_nodes(stages, organization, name_prefix):
    """awx.awx.workflow_job_template ``workflow_nodes``: the stages' job templates in a chain.

    Each node links to the next through ``success_nodes`` only, so a failed stage ends the workflow
    (no failure or always links). ``stages`` are the awx_configure_stages entries actually created.
    """
    if not isinstance(stages, list) or not stages:
        raise LlmopsError("the workflow needs at least one stage, got %r" % (stages,))
    names = []
    for stage in stages:
        if not isinstance(stage, dict) or not stage.get("name"):
            raise LlmopsError("every stage needs a name, got %r" % (stage,))
        names.append(stage["name"])
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise LlmopsError("stage names repeat: %s" % ", ".join(duplicated))
    nodes = []
    for index, name in enumerate(names):
        node = {
            "identifier": name,
            "unified_job_template": {
                "name": job_template_name(name_prefix, name),
                "type": "job_template",
                "organization": {"name": organization},
            },
            "related": {"success_nodes": [{"identifier": names[index + 1]}] if index + 1 < len(names) else []},
        }
        nodes.append(node)
    return nodes


def job_template_name(name_prefix, stage):
    return "%s %s" % (name_prefix, stage) if name_prefix else stage
