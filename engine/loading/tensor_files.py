"""Reading tensors from the files users have, lazily and without ever executing a pickle.

`.safetensors` tensors are read one at a time with plain file reads into fresh memory: no memory
map, so resident memory holds one copy of the weights (a mapped file's pages would count a second
time) and overwriting the file later cannot fault a loaded model. `.ckpt/.pt/.pth/.bin` go through
`torch.load(weights_only=True)`. What a file is decides from its first bytes, not its name, so an
HTML page saved as `.safetensors` is called what it is.
"""
import json
import logging
import pickle
import zipfile
from pathlib import Path

import torch

from ..errors import CorruptCheckpointError, UnsafePickleError, WrongFileTypeError

log = logging.getLogger(__name__)
SAFETENSORS_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
                      "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
                      "U8": torch.uint8, "BOOL": torch.bool, "F8_E4M3": torch.float8_e4m3fn,
                      "F8_E5M2": torch.float8_e5m2}

SAFETENSORS_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")


class PicklePolicy:
    """Whether a pickle the weights-only loader refuses may be loaded anyway (it can run any code).
    Off unless the app starts with --allow-unsafe-pickle; set once at start-up."""
    allow_unsafe = False


def allow_unsafe_pickle(enabled: bool) -> None:
    PicklePolicy.allow_unsafe = bool(enabled)


class SafetensorsFile:
    """Header of a .safetensors file (https://github.com/huggingface/safetensors#format) and reads by offset."""

    def __init__(self, path: Path):
        self.path = path
        size = path.stat().st_size
        with open(path, "rb") as f:
            header_len = int.from_bytes(f.read(8), "little")
            try:
                header = json.loads(f.read(header_len))
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise CorruptCheckpointError(f"{path.name}: damaged safetensors header ({e})") from e
        self.metadata = header.pop("__metadata__", None) or {}
        self.data_start = 8 + header_len
        self.entries = header
        last_byte = max((e["data_offsets"][1] for e in header.values()), default=0)
        if self.data_start + last_byte > size:
            raise CorruptCheckpointError(f"{path.name} is truncated: {self.data_start + last_byte:,} bytes "
                                         f"expected, {size:,} present. Download it again.")

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self.entries[key]["shape"])

    def read(self, key: str) -> torch.Tensor:
        entry = self.entries[key]
        dtype = SAFETENSORS_DTYPES.get(entry["dtype"])
        if dtype is None:
            raise CorruptCheckpointError(f"{self.path.name}: tensor {key} has unsupported dtype {entry['dtype']}")
        begin, end = entry["data_offsets"]
        tensor = torch.empty(entry["shape"], dtype=dtype)
        if tensor.numel() * tensor.element_size() != end - begin:
            raise CorruptCheckpointError(f"{self.path.name}: tensor {key} has {end - begin} bytes for shape "
                                         f"{entry['shape']} {entry['dtype']}")
        with open(self.path, "rb") as f:
            f.seek(self.data_start + begin)
            f.readinto(memoryview(tensor.view(-1).view(torch.uint8).numpy()))
        return tensor


class TensorSource:
    """Read-only view of the tensors of one or more files: keys, shapes, and tensors on demand."""

    def __init__(self, paths: list[Path]):
        self.paths = paths
        self._where: dict[str, object] = {}
        self.metadata: dict[str, str] = {}
        for path in paths:
            self._open(path)

    def _open(self, path: Path):
        kind = sniff(path)
        if kind == "safetensors":
            handle = SafetensorsFile(path)
            self.metadata.update(handle.metadata)
            for key in handle.entries:
                self._where[key] = handle
        else:
            for key, tensor in load_pickle_state_dict(path).items():
                self._where[key] = tensor

    def keys(self):
        return self._where.keys()

    @property
    def fresh(self) -> bool:
        """Each get() reads a new tensor (safetensors) rather than handing out one the source keeps (pickle)."""
        return not any(isinstance(where, torch.Tensor) for where in self._where.values())

    def __contains__(self, key: str) -> bool:
        return key in self._where

    def shape(self, key: str) -> tuple[int, ...]:
        where = self._where[key]
        if isinstance(where, torch.Tensor):
            return tuple(where.shape)
        return where.shape(key)

    def get(self, key: str) -> torch.Tensor:
        where = self._where[key]
        return where if isinstance(where, torch.Tensor) else where.read(key)


def sniff(path: Path) -> str:
    """'safetensors' or 'pickle' from the file's first bytes; a clear error for anything else."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such model file: {path}")
    size = path.stat().st_size
    if size == 0:
        raise CorruptCheckpointError(f"{path.name} is empty (0 bytes): the download or copy did not finish")
    with open(path, "rb") as f:
        head = f.read(64)
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype", b"<html", b"<head", b"<?xml")):
        raise WrongFileTypeError(f"{path.name} is a web page, not a model: download the file itself, not its page")
    if text.startswith(b"version https://git-lfs"):
        raise WrongFileTypeError(f"{path.name} is a Git LFS pointer, not the model: fetch the real file")
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        return "pickle"
    if len(head) >= 9 and head[8:9] == b"{":
        header_len = int.from_bytes(head[:8], "little")
        if 8 + header_len > size:
            raise CorruptCheckpointError(f"{path.name} is truncated: its header says more than the file holds")
        return "safetensors"
    if head[:1] in (b"{", b"["):
        raise WrongFileTypeError(f"{path.name} is a JSON/text file, not model weights")
    raise WrongFileTypeError(f"{path.name} is neither a safetensors file nor a PyTorch checkpoint")


def load_pickle_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A `.ckpt/.pt/.pth/.bin` state dict through torch's weights-only unpickler: no code ever runs."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if PicklePolicy.allow_unsafe:
            log.warning("%s: loading a pickle that can run code (--allow-unsafe-pickle)", path.name)
            obj = torch.load(path, map_location="cpu", weights_only=False)
            return _tensors_of(obj, path)
        raise UnsafePickleError(
            f"{path.name} was refused: its pickle asks to run code or build objects beyond plain tensors "
            f"({str(e).splitlines()[0][:200]}). Use a .safetensors version of this model.") from e
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as e:
        raise CorruptCheckpointError(f"{path.name}: damaged or truncated checkpoint ({str(e)[:200]})") from e
    return _tensors_of(obj, path)


def _tensors_of(obj, path: Path) -> dict[str, torch.Tensor]:
    for wrapper in ("state_dict", "params_ema", "params"):     # Lightning / CompVis; BasicSR (ESRGAN, SwinIR, ...)
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
            break
    if not isinstance(obj, dict):
        raise WrongFileTypeError(f"{path.name} holds a {type(obj).__name__}, not a state dict of tensors")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def open_tensors(path: Path) -> TensorSource:
    """One weights file, or a sharded set through its `*.index.json`."""
    path = Path(path)
    if path.name.endswith(".index.json"):
        weight_map = json.loads(path.read_text())["weight_map"]
        return TensorSource([path.parent / name for name in sorted(set(weight_map.values()))])
    return TensorSource([path])
