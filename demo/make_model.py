"""Write a small real model: a 2-layer MLP's weights as safetensors, plus its config.

Pure Python (no framework needed): safetensors is an 8-byte little-endian header length, a JSON
header naming each tensor's dtype, shape and byte range, then the raw little-endian data.
"""

from __future__ import annotations

import json
import random
import struct
import sys
from pathlib import Path


def write_safetensors(path: Path, tensors: dict[str, tuple[list[int], list[float]]]) -> None:
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    blobs: list[bytes] = []
    offset = 0
    for name, (shape, values) in tensors.items():
        blob = struct.pack(f"<{len(values)}f", *values)
        header[name] = {
            "dtype": "F32",
            "shape": shape,
            "data_offsets": [offset, offset + len(blob)],
        }
        blobs.append(blob)
        offset += len(blob)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # align the data section
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"".join(blobs))


def main(out: Path) -> None:
    rng = random.Random(42)
    out.mkdir(parents=True, exist_ok=True)
    sizes = [(64, 32), (32, 64), (10, 32)]
    tensors = {}
    for i, (rows, cols) in enumerate(sizes):
        tensors[f"layers.{i}.weight"] = (
            [rows, cols],
            [rng.gauss(0, 0.1) for _ in range(rows * cols)],
        )
        tensors[f"layers.{i}.bias"] = ([rows], [0.0] * rows)
    write_safetensors(out / "model.safetensors", tensors)
    config = {"architecture": "mlp", "layers": [32, 64, 32, 10], "activation": "relu"}
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out / "README.md").write_text("# tiny-mlp\nA 4-layer perceptron for the modelseal demo.\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
