# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which accelerator and engine run a weight format, and how.

``support(fmt, method, accelerator, engine)`` answers ``(verdict, why)``:

* ``native``: the format's own kernels run on this hardware;
* ``emulated``: the engine runs it through weight-only kernels (weights dequantized to 16 bit inside
  the GEMM: vLLM's Marlin W8A16 / W4A16 paths, MXFP4 on Hopper), so it loads and serves, slower for
  compute-bound batches: the planner warns;
* ``refused``: the engine's kernels for this format do not exist for this hardware and it fails
  after loading (or refuses the checkpoint): the planner returns ``fits: false`` with alternatives.

The verdicts are for the engine versions the inventories pin (ENGINE_VERSIONS, the image tags of
roles/inference_server), with the engine code or issue that shows each in a comment.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# The image tags the inventories use (roles/inference_server defaults, inventories/*/group_vars).
ENGINE_VERSIONS = {"sglang": "v0.5.6.post2", "vllm": "v0.12.0"}

# Per (engine, format): SM ranges [low, high) and the verdict there; no matching range = refused.
# FP8 (e4m3) tensor cores: Ada (8.9) and Hopper (9.0) onwards. Triton refuses fp8e4nv below 8.9:
#   "AssertionError: fp8e4nv data type is not supported on CUDA arch < 89" (SGLang on A100:
#   https://github.com/skypilot-org/skypilot/issues/4723; the Triton path on A800:
#   https://github.com/vllm-project/vllm/issues/15336).
#   SGLang has no FP8 fallback below SM 8.9 in the pinned version: the Marlin W8A16 MoE path is an
#   open pull request (https://github.com/sgl-project/sglang/pull/30681, superseding #9754) and the
#   request https://github.com/sgl-project/sglang/issues/12887 was closed unimplemented.
#   vLLM: FP8 Marlin (W8A16) on SM 8.0+: https://github.com/vllm-project/vllm/pull/5975 (dense),
#   https://github.com/vllm-project/vllm/pull/18026 (MoE, v0.9.0), logged as "Your GPU does not have
#   native support for FP8 computation ... Weight-only FP8 compression will be used leveraging the
#   Marlin kernel" (vllm/model_executor/layers/quantization/utils/marlin_utils_fp8.py).
# FP4 tensor cores (MXFP4, NVFP4): Blackwell, SM 10.0 (B200/GB200), 10.3 (B300/GB300), 12.0 (RTX PRO 6000).
#   MXFP4 (gpt-oss): both engines run the MoE through OpenAI's triton_kernels on SM 9.0 and 10.x
#   (W4A16 on Hopper, which has no FP4); vLLM uses Marlin on the other SMs
#   (https://github.com/vllm-project/vllm/pull/29339, "Only use triton_kernels for MXFP4 on SM90 and
#   SM100"); SGLang's triton_kernels path fails on SM 12.0 (https://github.com/sgl-project/sglang/issues/9707)
#   and has no Marlin MXFP4 path.
#   NVFP4: SGLang's modelopt_fp4 GEMMs are CUTLASS/FlashInfer SM100 kernels; vLLM falls back to FP4
#   Marlin (weight-only) below Blackwell (marlin_utils_fp4.py).
# INT8 W8A8 / INT4 W4A16 (Marlin, SM 8.0+) and 16-bit weights run natively on every catalog GPU.
NATIVE, EMULATED = "native", "emulated"
RULES = {
    ("sglang", "fp8"): ((8.9, 99.0, NATIVE),),
    ("vllm", "fp8"): ((8.9, 99.0, NATIVE), (8.0, 8.9, EMULATED)),
    ("sglang", "mxfp4"): ((10.0, 11.0, NATIVE), (9.0, 10.0, EMULATED)),
    ("vllm", "mxfp4"): ((10.0, 11.0, NATIVE), (12.0, 99.0, NATIVE), (8.0, 10.0, EMULATED)),
    ("sglang", "nvfp4"): ((10.0, 99.0, NATIVE),),
    ("vllm", "nvfp4"): ((10.0, 99.0, NATIVE), (8.0, 10.0, EMULATED)),
}
# below these, even the 16-bit / integer paths are not built (BF16 needs Ampere)
MIN_SM = {"bf16": 8.0, "fp16": 7.0, "int8": 7.5, "int4": 7.5}
NEEDS = {
    "fp8": "FP8 tensor cores (SM >= 8.9)",
    "mxfp4": "FP4 tensor cores (SM >= 10.0)",
    "nvfp4": "FP4 tensor cores (SM >= 10.0)",
}


# Checkpoint quantization methods (config.json quant_method) one engine cannot load at all.
# blockwise_int8 / w8a8_int8 are SGLang's INT8 methods (python/sglang/srt/layers/quantization/
# blockint8.py, w8a8_int8.py; the SGLang DeepSeek guide serves meituan/DeepSeek-R1-Block-INT8 on
# 2 x 8 A100/A800); vLLM has no such method (vllm/model_executor/layers/quantization/__init__.py):
# it reads INT8 W8A8 from compressed-tensors checkpoints. "ascend" is vllm-ascend's msModelSlim format.
ENGINE_METHODS_MISSING = {
    "vllm": ("blockwise_int8", "w8a8_int8"),
    "sglang": (),
}


def support(fmt, method, accelerator, engine):
    """``(verdict, why)`` for weights of format ``fmt`` (checkpoint ``quant_method``) on this hardware."""
    acc_id = accelerator.get("id", "accelerator")
    version = ENGINE_VERSIONS.get(engine, "")
    if method and method in ENGINE_METHODS_MISSING.get(engine, ()):
        return "refused", "%s %s cannot load %s checkpoints (quant_method %s)" % (engine, version, fmt, method)
    if method == "ascend" and accelerator.get("vendor") != "huawei":
        return "refused", "quant_method ascend (msModelSlim W8A8) runs only on Ascend NPUs with vllm-ascend"
    if accelerator.get("vendor") == "huawei":
        if fmt in ("mxfp4", "nvfp4"):
            return "refused", "%s has no FP4 support" % acc_id
        return "native", ""
    sm = accelerator.get("sm")
    if sm is None:  # an ad-hoc accelerator (accelerator_memory_gib): nothing known to check
        return NATIVE, ""
    rules = RULES.get((engine, fmt))
    if rules is None:
        need = MIN_SM.get(fmt, 0.0)
        if sm >= need:
            return NATIVE, ""
        return "refused", "%s (SM %.1f) cannot run %s weights (SM >= %.1f)" % (acc_id, sm, fmt.upper(), need)
    for low, high, verdict in rules:
        if low <= sm < high:
            if verdict == NATIVE:
                return NATIVE, ""
            return EMULATED, (
                "%s (SM %.1f) has no %s: %s %s runs these %s weights through weight-only kernels "
                "(dequantized to 16 bit in the GEMM), slower for large batches"
                % (acc_id, sm, NEEDS[fmt], engine, version, fmt.upper())
            )
    ranges = ", ".join(
        ("SM >= %.1f" % low) if high >= 99.0 else ("SM %.1f to %.1f" % (low, high - 0.1)) for low, high, _v in rules
    )
    return "refused", "%s %s has no %s kernels for %s (SM %.1f; it runs them on %s)" % (
        engine,
        version,
        fmt.upper(),
        acc_id,
        sm,
        ranges,
    )
