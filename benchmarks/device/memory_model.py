# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check the planner's memory model against real allocations on a GPU.

Builds models from their config (random weights, bf16, on the GPU) with the
transformers library, measures

* weight bytes as allocated: torch.cuda.memory_allocated() after minus before building;
* KV bytes per token as allocated: the tensors of the KV cache after a forward pass
  of N tokens, divided by N. For MLA models transformers caches decompressed K/V,
  while SGLang/vLLM cache the compressed latent (the output of kv_a_proj_with_mqa,
  kv_lora_rank + qk_rope_head_dim per token and layer); both are measured, the
  latent through forward hooks,

and compares each with what model_memory.py computes from the same config.
Runs on the device machine (torch + transformers there):

    python3 benchmarks/device/memory_model.py [--quick] [--out DIR]
"""

import argparse
import json
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def import_planner():
    """Make ``ansible_collections.llmops.inference`` importable from this checkout."""
    base = tempfile.mkdtemp(prefix="llmops-collections-")
    link = os.path.join(base, "ansible_collections", "llmops", "inference")
    os.makedirs(os.path.dirname(link))
    os.symlink(ROOT, link)
    sys.path.insert(0, base)
    from ansible_collections.llmops.inference.plugins.module_utils import model_catalog, model_memory

    return model_catalog, model_memory


# (label, catalog id, config changes): layer counts shrunk for the MoE models so they load fast;
# the memory model is per layer, so fewer layers test the same formulas.
CASES = [
    ("Qwen2-style GQA (Qwen2.5-7B)", "Qwen/Qwen2.5-7B-Instruct", {}),
    ("Llama-style GQA (Llama-3.1-8B)", "meta-llama/Llama-3.1-8B-Instruct", {}),
    ("DeepSeek-V2-Lite MLA+MoE (8 layers)", "deepseek-ai/DeepSeek-V2-Lite-Chat", {"num_hidden_layers": 8}),
    ("Qwen3-MoE GQA+MoE (Qwen3-30B-A3B, 8 layers)", "Qwen/Qwen3-30B-A3B", {"num_hidden_layers": 8}),
    ("DeepSeek-V3 MLA+MoE (4 layers)", "deepseek-ai/DeepSeek-V3", {"num_hidden_layers": 4}),
]
QUICK = {
    "hidden_size": 256,
    "intermediate_size": 512,
    "moe_intermediate_size": 128,
    "num_hidden_layers": 2,
    "vocab_size": 1024,
    "q_lora_rank": 64,
    "kv_lora_rank": 64,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
    "head_dim": 32,
    "qk_nope_head_dim": 32,
    "qk_rope_head_dim": 16,
    "v_head_dim": 32,
    "n_routed_experts": 8,
    "num_experts": 8,
    "num_experts_per_tok": 2,
}
DROP = ("quantization_config", "torch_dtype", "dtype")


def hf_config(transformers, fields):
    fields = {k: v for k, v in fields.items() if k not in DROP}
    model_type = fields.pop("model_type")
    return transformers.AutoConfig.for_model(model_type, **fields)


def build(transformers, torch, config):
    with torch.device("cuda"):
        try:
            return transformers.AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
        except TypeError:
            return transformers.AutoModelForCausalLM.from_config(config, torch_dtype=torch.bfloat16)


def cache_tensors(cache):
    if hasattr(cache, "layers"):
        for layer in cache.layers:
            for name in ("keys", "values"):
                tensor = getattr(layer, name, None)
                if tensor is not None:
                    yield tensor
    else:
        yield from list(getattr(cache, "key_cache", [])) + list(getattr(cache, "value_cache", []))


def measure(case, quick, tokens, transformers, torch, model_catalog, model_memory):
    label, model_id, changes = case
    fields = dict(model_catalog.MODELS[model_id]["config"])
    fields.update(changes)
    if quick:
        is_deepseek = fields.get("model_type", "").startswith("deepseek")
        for key, value in QUICK.items():
            if (key in fields and fields[key] is not None) or (key == "head_dim" and not is_deepseek):
                fields[key] = value
        if is_deepseek:
            fields.update(n_group=1, topk_group=1)
            fields["num_key_value_heads"] = fields["num_attention_heads"]
            fields["first_k_dense_replace"] = 1
    shape = model_memory.ModelShape(fields, name=label)
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated()
    start = time.time()
    model = build(transformers, torch, hf_config(transformers, fields)).eval()
    torch.cuda.synchronize()
    weights_measured = torch.cuda.memory_allocated() - before
    build_s = time.time() - start
    latent = []
    hooks = []
    for name, module in model.named_modules():
        if name.endswith("kv_a_proj_with_mqa"):
            hooks.append(module.register_forward_hook(lambda _m, _i, out: latent.append(out.nbytes)))
    input_ids = torch.randint(0, fields["vocab_size"], (1, tokens), device="cuda")
    with torch.no_grad():
        out = model(input_ids=input_ids, use_cache=True)
    cache_bytes = sum(t.nbytes for t in cache_tensors(out.past_key_values))
    for hook in hooks:
        hook.remove()
    row = {
        "model": label,
        "params": sum(p.numel() for p in model.parameters()),
        "params_planned": shape.total_parameters(),
        "weights_measured": weights_measured,
        "weights_planned": int(model_memory.total_weight_bytes(shape, "bf16")),
        "kv_measured": cache_bytes / float(tokens),
        "build_s": round(build_s, 1),
    }
    # transformers 5 caches MLA's compressed latent, as SGLang/vLLM do; the hook cross-checks that
    row["kv_planned"] = shape.kv_bytes_per_token(2.0)
    if shape.is_mla:
        row["kv_latent_measured"] = sum(latent) / float(tokens)
        row["kv_latent_planned"] = shape.kv_bytes_per_token(2.0)
        row["kv_uncompressed_planned"] = shape.kv_bytes_per_token_uncompressed(2.0)
    del out, model
    torch.cuda.empty_cache()
    return row


def err(measured, planned):
    return 100.0 * (planned - measured) / measured if measured else float("nan")


def table(rows):
    lines = [
        "| model | weights measured (bytes) | planned | error % | KV/token measured (bytes) | planned | error % |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        if "error" in row:
            lines.append("| %s | failed: %s | | | | | |" % (row["model"], row["error"][:80]))
            continue
        lines.append(
            "| %s | %d | %d | %+.3f | %.0f | %d | %+.3f |"
            % (
                row["model"],
                row["weights_measured"],
                row["weights_planned"],
                err(row["weights_measured"], row["weights_planned"]),
                row["kv_measured"],
                row["kv_planned"],
                err(row["kv_measured"], row["kv_planned"]),
            )
        )
        if "kv_latent_measured" in row:
            lines.append(
                "| %s: kv_a_proj_with_mqa output (MLA latent) | | | | %.0f | %d | %+.3f |"
                % (
                    row["model"],
                    row["kv_latent_measured"],
                    row["kv_latent_planned"],
                    err(row["kv_latent_measured"], row["kv_latent_planned"]),
                )
            )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny shapes: check the code path in seconds")
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--out", default=os.environ.get("OUT", "."))
    parser.add_argument("--table", metavar="JSON", help="only print the table of a saved result file")
    args = parser.parse_args()
    if args.table:
        with open(args.table) as handle:
            print(table(json.load(handle)))
        return 0
    import torch
    import transformers

    model_catalog, model_memory = import_planner()
    print(
        "torch %s, transformers %s, %s" % (torch.__version__, transformers.__version__, torch.cuda.get_device_name(0))
    )
    print("device memory: %d MiB" % (torch.cuda.get_device_properties(0).total_memory // (1 << 20)))
    rows = []
    for case in CASES:
        try:
            rows.append(measure(case, args.quick, args.tokens, transformers, torch, model_catalog, model_memory))
        except Exception as exc:  # one architecture failing must not hide the others
            rows.append({"model": case[0], "error": "%s: %s" % (type(exc).__name__, exc)})
        print(json.dumps(rows[-1]), flush=True)
    name = "memory_model_quick" if args.quick else "memory_model"
    with open(os.path.join(args.out, name + ".json"), "w") as handle:
        json.dump(rows, handle, indent=1)
    text = table(rows)
    with open(os.path.join(args.out, name + ".md"), "w") as handle:
        handle.write(text + "\n")
    print(text)
    return 1 if any("error" in row for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
