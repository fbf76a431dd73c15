"""scripts/testbed/make_model.py writes a tiny Qwen2 folder that real loaders read.

The shards come from our own safetensors writer: they are read back with the real `safetensors` library
(numpy backend) and checked against config.json (every Qwen2 parameter present with its shape, bf16,
finite values). The tokenizer and the whole folder are loaded for real by vLLM (its `tokenizers` and
`transformers`) in tests/integration/test_vllm_cpu_live.py.
"""

import importlib.util
import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "testbed" / "make_model.py"


@pytest.fixture(scope="module")
def make_model():
    spec = importlib.util.spec_from_file_location("make_model", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def model_dir(make_model, tmp_path_factory):
    dest = tmp_path_factory.mktemp("model")
    make_model.write_model(dest)
    return dest


def bf16_to_float(raw: np.ndarray) -> np.ndarray:
    return (raw.astype(np.uint32) << 16).view(np.float32)


def test_shards_read_back_with_safetensors_and_match_config(model_dir, make_model):
    config = json.loads((model_dir / "config.json").read_text())
    assert config["architectures"] == ["Qwen2ForCausalLM"]
    assert config["hidden_size"] // config["num_attention_heads"] == config["head_dim"] == 64
    index = json.loads((model_dir / "model.safetensors.index.json").read_text())
    expected = make_model.tensor_shapes(config)
    assert set(index["weight_map"]) == set(expected)
    shards = sorted(set(index["weight_map"].values()))
    assert shards == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    seen, total = {}, 0
    for shard in shards:
        with safe_open(str(model_dir / shard), framework="numpy") as f:
            for name in f.keys():  # noqa: SIM118 (safe_open is not a mapping)
                assert index["weight_map"][name] == shard
                seen[name] = tuple(f.get_slice(name).get_shape())
                assert f.get_slice(name).get_dtype() == "BF16"
        # the numpy backend has no bfloat16: check the values from the raw bytes the header points at
        blob = (model_dir / shard).read_bytes()
        (head_len,) = struct.unpack("<Q", blob[:8])
        header = json.loads(blob[8 : 8 + head_len])
        for name, meta in header.items():
            if name == "__metadata__":
                continue
            start, end = meta["data_offsets"]
            total += end - start
            values = bf16_to_float(np.frombuffer(blob[8 + head_len + start : 8 + head_len + end], dtype="<u2"))
            assert values.size == math.prod(meta["shape"])
            assert np.isfinite(values).all()
            if name.endswith("norm.weight"):
                assert (values == 1.0).all()
            elif name.endswith("proj.weight"):
                assert 0 < np.abs(values).max() <= 0.05
    assert seen == {n: tuple(s) for n, s in expected.items()}
    assert index["metadata"]["total_size"] == total
    assert config["vocab_size"] == seen["model.embed_tokens.weight"][0]


def test_output_is_deterministic_and_small(make_model, model_dir, tmp_path):
    make_model.write_model(tmp_path)
    for path in model_dir.iterdir():
        assert (tmp_path / path.name).read_bytes() == path.read_bytes(), path.name
    assert sum(p.stat().st_size for p in model_dir.iterdir()) < 8 * 1024 * 1024


def test_tokenizer_covers_every_byte_and_the_chat_template(model_dir, make_model):
    tok = json.loads((model_dir / "tokenizer.json").read_text())
    vocab = tok["model"]["vocab"]
    assert sorted(vocab.values()) == list(range(256))
    assert [t["content"] for t in tok["added_tokens"]] == list(make_model.SPECIAL_TOKENS)
    config = json.loads((model_dir / "config.json").read_text())
    assert config["vocab_size"] == len(vocab) + len(tok["added_tokens"])
    tok_config = json.loads((model_dir / "tokenizer_config.json").read_text())
    assert "<|im_start|>" in tok_config["chat_template"]
    assert tok["pre_tokenizer"]["type"] == tok["decoder"]["type"] == "ByteLevel"
    assert tok["model"]["type"] == "BPE" and tok["model"]["merges"] == []  # one token per byte
