"""A safetensors file's header, read and checked without torch: tensor shapes, metadata, and
whether the file is whole. Corrupt or truncated files are named with what is wrong, before
anything tries to load them.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path

MAX_HEADER = 100_000_000
ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4,
            "U16": 2, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1}


class BadFile(ValueError):
    """The file is not a whole safetensors file; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class Header:
    shapes: dict[str, list[int]]
    dtypes: dict[str, str]
    metadata: dict[str, str] = field(default_factory=dict)
    data_start: int = 0            # where the tensor bytes begin (8 + header length)
    size: int = 0                  # file size in bytes


def read_header(path: Path) -> Header:
    """The header of a safetensors file, checked: every tensor's bytes lie inside the file, the
    file ends where the last tensor does. ``BadFile`` otherwise; ``OSError`` if it cannot be read."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise BadFile(f"{path.name} is {size} bytes: too short to be a safetensors file (truncated?)")
        (length,) = struct.unpack("<Q", head)
        if length > min(MAX_HEADER, size - 8):
            raise BadFile(f"{path.name}: its header claims {length} bytes but the file has {size}: "
                          "truncated, or not a safetensors file")
        raw = handle.read(length)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadFile(f"{path.name}: the header is not valid JSON ({err.__class__.__name__}): corrupt, or not a "
                      "safetensors file") from None
    if not isinstance(header, dict):
        raise BadFile(f"{path.name}: the header is not a JSON object: corrupt, or not a safetensors file")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict):
        raise BadFile(f"{path.name}: __metadata__ is not an object")
    start = 8 + length
    shapes, dtypes, end = {}, {}, 0
    for name, info in header.items():
        try:
            dtype, shape, (begin, stop) = info["dtype"], list(info["shape"]), info["data_offsets"]
            ok = all(isinstance(x, int) and x >= 0 for x in (*shape, begin, stop)) and begin <= stop
        except (TypeError, KeyError, ValueError):
            ok = False
        if not ok:
            raise BadFile(f"{path.name}: tensor {name!r} has a malformed entry in the header: corrupt")
        itemsize = ITEMSIZE.get(dtype)
        if itemsize is not None and stop - begin != math.prod(shape) * itemsize:
            raise BadFile(f"{path.name}: tensor {name!r} ({dtype} {shape}) does not fill its {stop - begin} bytes: "
                          "corrupt")
        shapes[name], dtypes[name] = shape, dtype
        end = max(end, stop)
    if start + end > size:
        raise BadFile(f"{path.name} is truncated: its tensors need {start + end} bytes, the file has {size}")
    if start + end < size:
        raise BadFile(f"{path.name} has {size - start - end} bytes after its last tensor: corrupt")
    return Header(shapes, dtypes, {str(k): str(v) for k, v in meta.items()}, start, size)
