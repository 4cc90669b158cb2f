"""Checkpoint files a matrix names (``weights: PATH``): checked when the matrix is loaded, without
torch and without unpickling anything. A torch checkpoint is a zip (or a pre-1.6 stream) of
pickles; each pickle's opcodes and globals are read with ``pickletools`` and held to what
``torch.load(weights_only=True)`` accepts, so a planted pickle is refused before it can run."""

from __future__ import annotations

import io
import json
import math
import pickletools
import re
import zipfile
from pathlib import Path
from typing import Any

from resnetbench.inputs import shown

__all__ = ["LEGACY_MAGIC", "checkpoint_problem"]

# safetensors' dtypes and their sizes in bytes (the format's header spells them this way).
SAFETENSORS_DTYPES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1, "I16": 2, "U16": 2,
                      "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8, "C64": 8}
# The globals torch.load(weights_only=True) resolves (torch/_weights_only_unpickler.py,
# _get_allowed_globals), as patterns, after Python 2 names are mapped as torch maps them.
_TORCH_DTYPE = r"(u?int\d+|float\d*(_\w+)?|bfloat16|half|double|complex\d+|cfloat|cdouble|chalf|short|int|long|bool|q(u)?int\d+(x\d+)?|bits\w+)"
SAFE_GLOBALS = re.compile(
    r"^(collections\.(OrderedDict|Counter)|_codecs\.encode|builtins\.(bytearray|set|complex)"
    r"|torch\.(Size|Tensor|device|serialization\._get_layout|nn\.parameter\.Parameter)"
    rf"|torch\.{_TORCH_DTYPE}"
    r"|torch\.per_(tensor|channel)_(affine|symmetric)|torch\.per_channel_affine_float_qparams"
    r"|torch(\.cuda|\.sparse)?\.[A-Z]\w*Tensor|torch(\.cuda)?\.\w*Storage|torch\.storage\.(Typed|Untyped)Storage"
    r"|torch\._utils\._rebuild_\w+|torch\._tensor\._rebuild_from_type_v2)$"
)
_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}
# The opcodes torch's weights-only unpickler accepts; it refuses every other one.
SAFE_OPCODES = frozenset({
    "GLOBAL", "NEWOBJ", "REDUCE", "BUILD", "APPEND", "APPENDS", "SETITEM", "SETITEMS", "MARK", "TUPLE", "TUPLE1",
    "TUPLE2", "TUPLE3", "NONE", "NEWFALSE", "NEWTRUE", "EMPTY_TUPLE", "EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET",
    "BININT", "BININT1", "BININT2", "BINFLOAT", "BINUNICODE", "SHORT_BINSTRING", "BINPERSID", "BINGET",
    "LONG_BINGET", "BINPUT", "LONG_BINPUT", "LONG1", "PROTO", "STOP",
})
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER, the first pickle of a pre-1.6 file


def checkpoint_problem(path: Path) -> str | None:
    """What keeps ``weights.load_checkpoint`` from loading ``path``, found without torch and
    without unpickling anything; None when it looks loadable.

    ``.safetensors``: the header must be JSON whose tensors fill the file exactly. Otherwise
    a torch file (zip since torch 1.6, or the legacy stream of pickles): complete, and its
    pickle may only name the globals and opcodes ``torch.load(weights_only=True)`` accepts,
    so pickled code (``os.system``, a whole pickled model) is refused here and never run.
    Whether the tensors fit the architecture needs the model, so torch, and is checked when
    the case builds.
    """
    try:
        if path.is_dir():
            return "is a directory, not a checkpoint file."
        if not path.is_file():
            return "is not a regular file (a device or a pipe?): name a checkpoint file."
        size = path.stat().st_size
        with path.open("rb") as fh:
            if path.suffix == ".safetensors":
                return _safetensors_problem(fh, size)
            head = fh.read(4)
            fh.seek(0)
            if zipfile.is_zipfile(fh):
                return _torch_zip_problem(fh, size)
            if head.startswith(b"PK"):
                return "is truncated or corrupt: a zip archive without its end (torch.save writes complete zip files)."
            if head[:1] == b"\x80":
                fh.seek(0)  # is_zipfile moved it
                return _legacy_problem(fh)
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}."
    what = "empty" if size == 0 else "neither a torch checkpoint (a zip archive or a pickle) nor .safetensors"
    return f"is {what}: torch.load cannot read it."


def _safetensors_problem(fh: Any, size: int) -> str | None:
    head = fh.read(8)
    if len(head) < 8:
        return f"is truncated: {size} bytes is shorter than a safetensors header."
    length = int.from_bytes(head, "little")
    if length > size - 8:
        return (f"is truncated or not a safetensors file: its header claims {length:,} bytes and only "
                f"{size - 8:,} follow.")
    try:
        header = json.loads(fh.read(length))
    except (ValueError, RecursionError):
        return "is corrupt: its safetensors header is not JSON."
    if not isinstance(header, dict):
        return "is corrupt: its safetensors header is not a JSON object."
    data_bytes, end = size - 8 - length, 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        fields: list[Any] = [info.get(k) for k in ("dtype", "shape", "data_offsets")] if isinstance(
            info, dict) else [None, None, None]
        dtype, shape, offsets = fields
        valid = (dtype in SAFETENSORS_DTYPES and isinstance(shape, list) and isinstance(offsets, list)
                 and all(type(d) is int and d >= 0 for d in shape)
                 and len(offsets) == 2 and all(type(o) is int for o in offsets) and 0 <= offsets[0] <= offsets[1])
        if not valid:
            return f"is corrupt: tensor {shown(name)} has no valid dtype, shape and data_offsets in its header."
        need = math.prod(shape) * SAFETENSORS_DTYPES[dtype]
        if offsets[1] - offsets[0] != need:
            return (f"is corrupt: tensor {shown(name)} spans {offsets[1] - offsets[0]:,} bytes, its shape and dtype "
                    f"need {need:,}.")
        end = max(end, offsets[1])
    if end > data_bytes:
        return f"is truncated: its tensors need {end:,} bytes of data and the file holds {data_bytes:,}."
    if end < data_bytes:
        return f"is corrupt: {data_bytes - end:,} bytes after the last tensor belong to none."
    return None


def _torch_zip_problem(fh: Any, size: int) -> str | None:
    try:
        with zipfile.ZipFile(fh) as zf:
            infos = zf.infolist()
            pickles = [i.filename for i in infos if i.filename.endswith("data.pkl") and i.filename.count("/") <= 1]
            if not pickles:
                return "is a zip archive without data.pkl: not a file torch.save wrote."
            prefix = pickles[0][: -len("data.pkl")]
            if any(i.filename.startswith(prefix + "code/") for i in infos):
                return ("is a TorchScript archive (torch.jit.save), not a state_dict: save model.state_dict() "
                        "with torch.save.")
            for info in infos:
                if info.header_offset + info.compress_size > size:
                    return f"is truncated: {info.filename} runs past the end of the file."
            data = zf.read(pickles[0])  # checks its CRC
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, NotImplementedError) as exc:
        return f"is corrupt: {exc}."
    return _pickle_problem(io.BytesIO(data), "data.pkl")


def _legacy_problem(fh: Any) -> str | None:
    """A pre-1.6 torch file: five pickles (magic number, protocol, system info, the object,
    the storage keys), then raw storage bytes."""
    for index in range(5):
        problem = _pickle_problem(fh, f"pickle {index + 1}", magic=index == 0)
        if problem:
            return problem
    return None


def _pickle_problem(fh: Any, name: str, magic: bool = False) -> str | None:
    """Scan one pickle (up to its STOP) with pickletools, which only reads it: every global it
    names and every opcode must be one torch's weights-only unpickler accepts."""
    first = True
    try:
        for opcode, arg, _ in pickletools.genops(fh):
            if magic and first and opcode.name != "PROTO":
                first = False
                if opcode.name != "LONG1" or arg != LEGACY_MAGIC:
                    return "is a pickle but not a torch checkpoint (no torch magic number)."
            if opcode.name == "PROTO":
                continue
            first = False
            if opcode.name in ("GLOBAL", "INST"):
                module, _, attr = str(arg).partition(" ")
                dotted = f"{_PY2_MODULES.get(module, module)}.{attr}"
                if not SAFE_GLOBALS.match(dotted):
                    return (f"carries pickled code: {name} calls {shown(dotted)}, which a state_dict never "
                            f"needs; refused without unpickling it (save model.state_dict(), or use .safetensors).")
            elif opcode.name not in SAFE_OPCODES:
                return (f"carries a pickle opcode ({opcode.name}) that torch.load(weights_only=True) refuses; "
                        f"refused without unpickling it (re-save it with torch.save(model.state_dict(), ...)).")
            if opcode.name == "STOP":
                return None
    except (ValueError, EOFError) as exc:
        return f"is truncated or corrupt: {name} cannot be read ({shown(str(exc), 100)})."
    return f"is truncated: {name} ends before its STOP."
