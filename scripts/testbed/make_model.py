"""Write a tiny, real, loadable Qwen2 model folder (random weights) for the test bed.

What it writes, all deterministic (same bytes on every run, stdlib only so it runs on any Python 3.11):
- config.json: Qwen2ForCausalLM, 2 layers, hidden 256, 4 attention heads of head_dim 64 (vLLM's CPU
  attention kernel refuses head_dim 16), 2 KV heads, bfloat16;
- tokenizer.json: a Hugging Face `tokenizers` byte-level BPE over the 256 bytes plus the ChatML special
  tokens, tokenizer_config.json with a ChatML chat template, generation_config.json;
- model.safetensors.index.json and two shards, written by our own safetensors writer (8-byte
  little-endian header length, JSON header of dtype/shape/data_offsets, raw little-endian data).

A few MiB: what the test bed's S3 bucket and vLLM-on-CPU serve. Usage: make_model.py DEST_DIR
"""

from __future__ import annotations

import array
import json
import random
import struct
import sys
from pathlib import Path

SEED = 20261130
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
VOCAB_SIZE = 256 + len(SPECIAL_TOKENS)
CONFIG = {
    "architectures": ["Qwen2ForCausalLM"],
    "model_type": "qwen2",
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 64,
    "hidden_act": "silu",
    "max_position_embeddings": 2048,
    "max_window_layers": 2,
    "rms_norm_eps": 1e-6,
    "rope_theta": 10000.0,
    "sliding_window": None,
    "use_sliding_window": False,
    "attention_dropout": 0.0,
    "initializer_range": 0.02,
    "tie_word_embeddings": False,
    "use_cache": True,
    "torch_dtype": "bfloat16",
    "vocab_size": VOCAB_SIZE,
    "bos_token_id": 256,
    "eos_token_id": 258,
}


def byte_to_unicode() -> dict[int, str]:
    """GPT-2's byte-level alphabet: every byte as a printable character (what ByteLevel pre-tokenizes to)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars), strict=True))


def tokenizer_json() -> dict:
    vocab = {ch: b for b, ch in sorted(byte_to_unicode().items())}
    added = [
        {"id": 256 + i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True}
        for i, t in enumerate(SPECIAL_TOKENS)
    ]  # fmt: skip
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": True}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": byte_level,
        "post_processor": byte_level,
        "decoder": byte_level,
        "model": {
            "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
            "vocab": vocab, "merges": [],
        },
    }  # fmt: skip


def tokenizer_config() -> dict:
    return {
        "added_tokens_decoder": {
            str(256 + i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                           "single_word": False, "special": True}
            for i, t in enumerate(SPECIAL_TOKENS)
        },
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": None,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "model_max_length": CONFIG["max_position_embeddings"],
        "tokenizer_class": "PreTrainedTokenizerFast",
    }  # fmt: skip


def tensor_shapes(config: dict) -> dict[str, list[int]]:
    """Hugging Face Qwen2 parameter names and shapes for config."""
    h, inter, v = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    q = config["num_attention_heads"] * config["head_dim"]
    kv = config["num_key_value_heads"] * config["head_dim"]
    shapes = {"model.embed_tokens.weight": [v, h], "model.norm.weight": [h], "lm_head.weight": [v, h]}
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        shapes |= {
            p + "input_layernorm.weight": [h],
            p + "post_attention_layernorm.weight": [h],
            p + "self_attn.q_proj.weight": [q, h],
            p + "self_attn.q_proj.bias": [q],
            p + "self_attn.k_proj.weight": [kv, h],
            p + "self_attn.k_proj.bias": [kv],
            p + "self_attn.v_proj.weight": [kv, h],
            p + "self_attn.v_proj.bias": [kv],
            p + "self_attn.o_proj.weight": [h, q],
            p + "mlp.gate_proj.weight": [inter, h],
            p + "mlp.up_proj.weight": [inter, h],
            p + "mlp.down_proj.weight": [h, inter],
        }
    return shapes


def bf16_values(name: str, shape: list[int], rng: random.Random) -> bytes:
    """Finite bfloat16 data: norms are 1.0, biases 0, weights uniform in +-0.05 (upper half of a float32)."""
    count = 1
    for dim in shape:
        count *= dim
    if name.endswith("norm.weight"):
        values = array.array("f", [1.0]) * count
    elif name.endswith(".bias"):
        values = array.array("f", [0.0]) * count
    else:
        values = array.array("f", [(rng.random() - 0.5) * 0.1 for _index in range(count)])
    if sys.byteorder != "little":
        values.byteswap()
    raw = values.tobytes()
    out = bytearray(len(raw) // 2)
    out[0::2] = raw[2::4]  # bfloat16 = the high 16 bits of the float32 (truncated)
    out[1::2] = raw[3::4]
    return bytes(out)


def write_safetensors(path: Path, tensors: dict[str, tuple[list[int], bytes]]) -> int:
    """Write tensors ({name: (shape, bf16 bytes)}) in the safetensors format; returns the data size."""
    header: dict = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name in sorted(tensors):
        shape, data = tensors[name]
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    head = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    head += b" " * (-len(head) % 8)  # the format pads the header with spaces to 8-byte alignment
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for name in sorted(tensors):
            f.write(tensors[name][1])
    return offset


def write_model(dest: Path, config: dict | None = None, shards: int = 2) -> list[Path]:
    config = CONFIG if config is None else config
    dest.mkdir(parents=True, exist_ok=True)
    rng = random.Random(SEED)
    shapes = tensor_shapes(config)
    # layer order (embeddings, layers, norm, head) decides which shard a tensor lands in
    names = sorted(shapes, key=lambda n: (n != "model.embed_tokens.weight", n.startswith(("lm_head", "model.norm")), n))
    data = {n: (shapes[n], bf16_values(n, shapes[n], rng)) for n in names}
    per_shard = -(-len(names) // shards)
    weight_map, total = {}, 0
    for s in range(shards):
        fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: data[n] for n in names[s * per_shard : (s + 1) * per_shard]}
        total += write_safetensors(dest / fname, part)
        weight_map |= dict.fromkeys(part, fname)
    files = {
        "config.json": config,
        "generation_config.json": {"bos_token_id": 256, "eos_token_id": [258, 256], "max_new_tokens": 64},
        "tokenizer.json": tokenizer_json(),
        "tokenizer_config.json": tokenizer_config(),
        "model.safetensors.index.json": {
            "metadata": {"total_size": total},
            "weight_map": dict(sorted(weight_map.items())),
        },
    }
    for fname, content in files.items():
        (dest / fname).write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return sorted(dest.iterdir())


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    for path in write_model(Path(argv[0])):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
