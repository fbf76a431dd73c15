"""Write the stand-in model folder the test bed's S3 server serves (scripts/testbed/s3-up.sh).

    s3_model.py DIR

config.json, a safetensors index and the two real safetensors shards it names (a few KiB, the same
bytes every time, so a re-upload finds nothing changed): what the model cache's verify needs. Used
until scripts/testbed/make_model.py (a tiny real Qwen2 folder with a tokenizer) lands; s3-up.sh's
model_maker names the command.
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

# A Qwen2-shaped config, small enough that its two shards are a few KiB (what the cache's verify needs:
# config.json and every shard the index names). make_model.py's folder replaces it once it lands.
CONFIG = {
    "architectures": ["Qwen2ForCausalLM"],
    "model_type": "qwen2",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 1,
    "num_key_value_heads": 1,
    "vocab_size": 32,
    "max_position_embeddings": 128,
    "torch_dtype": "float32",
}


def _safetensors(tensors: dict[str, tuple[list[int], bytes]]) -> bytes:
    """The safetensors format: u64 little-endian header length, JSON header, then the raw data."""
    header, data, offset = {}, b"", 0
    for name, (shape, raw) in sorted(tensors.items()):
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        data += raw
        offset += len(raw)
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # the header is padded to 8 bytes, as the reference writer does
    return struct.pack("<Q", len(encoded)) + encoded + data


def default_model(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(CONFIG, indent=2, sort_keys=True) + "\n")
    weight_map, total = {}, 0
    for index, layer in enumerate(range(CONFIG["num_hidden_layers"]), start=1):
        shard = f"model-{index:05d}-of-{CONFIG['num_hidden_layers']:05d}.safetensors"
        name = f"model.layers.{layer}.mlp.up_proj.weight"
        shape = [CONFIG["intermediate_size"], CONFIG["hidden_size"]]
        raw = struct.pack(f"<{shape[0] * shape[1]}f", *[(i % 7) / 7.0 for i in range(shape[0] * shape[1])])
        (folder / shard).write_bytes(_safetensors({name: (shape, raw)}))
        weight_map[name] = shard
        total += len(raw)
    index_doc = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index_doc, indent=2, sort_keys=True) + "\n")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    default_model(Path(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
