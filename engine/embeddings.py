"""Textual inversion embeddings from A1111's `embeddings/` folder, used by file name in any prompt.

Formats: A1111's `.pt` (`string_to_param: {"*": (n, width)}`, read by PyTorch's weights-only unpickler),
`.safetensors` with `emb_params` (n, width) or SDXL's `clip_l` (n, 768) and `clip_g` (n, 1280), and the
one-tensor files diffusers writes (`{"<token>": (n, width)}`). Where the name's tokens appear in a prompt,
the n vectors stand in their place as token embeddings (Gal et al. 2022). An embedding made for another
family (its width or its parts do not fit the loaded text towers) is skipped with a warning, as A1111 does.
"""
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import EngineError
from .loading.catalog import _inside
from .loading.tensor_files import open_tensors

log = logging.getLogger(__name__)
SUFFIXES = (".pt", ".bin", ".safetensors")
SDXL_PARTS = ("clip_l", "clip_g")           # SDXL embeddings: one set of vectors per text tower, in tower order


@dataclass
class Embedding:
    name: str
    vectors: dict[str, torch.Tensor]        # "" (one tower) or clip_l / clip_g -> (n, width)
    path: Path
    step: int | None = None

    @property
    def count(self) -> int:
        return next(iter(self.vectors.values())).shape[0]

    @property
    def shorthash(self) -> str:
        """A1111's TI hash: the first 12 hex digits of the file's sha256."""
        return hashlib.sha256(self.path.read_bytes()).hexdigest()[:12]

    def for_towers(self, widths: list[int]) -> list[torch.Tensor] | None:
        """The vectors for each text tower of these widths, or None when the embedding is for another family."""
        if len(widths) == 2:
            parts = [self.vectors.get(p) for p in SDXL_PARTS]
        else:
            parts = [self.vectors.get("")]
        if any(p is None for p in parts) or [p.shape[-1] for p in parts] != widths:
            return None
        return parts


class EmbeddingError(EngineError):
    """A file in the embeddings folder that holds no embedding this app can read."""


def read_embedding(path: Path) -> Embedding:
    path = Path(path)
    source = open_tensors(path) if path.suffix.lower() == ".safetensors" else None
    if source is not None:
        keys = set(source.keys())
        if set(SDXL_PARTS) <= keys:
            return Embedding(path.stem, {p: source.get(p).float() for p in SDXL_PARTS}, path)
        key = "emb_params" if "emb_params" in keys else (next(iter(keys)) if len(keys) == 1 else None)
        if key is None:
            raise EmbeddingError(f"{path.name}: no emb_params, clip_l/clip_g or single tensor")
        return Embedding(path.stem, {"": _rows(source.get(key))}, path)
    data = _weights_only(path)
    if isinstance(data.get("string_to_param"), dict):
        vectors = next(iter(data["string_to_param"].values()))
        step = data.get("step")
        return Embedding(path.stem, {"": _rows(vectors)}, path, step if isinstance(step, int) else None)
    tensors = [v for v in data.values() if isinstance(v, torch.Tensor)]
    if len(tensors) == 1:
        return Embedding(path.stem, {"": _rows(tensors[0])}, path)
    raise EmbeddingError(f"{path.name}: not a textual inversion embedding (no string_to_param)")


def _rows(tensor: torch.Tensor) -> torch.Tensor:
    return (tensor[None] if tensor.dim() == 1 else tensor).float()


def _weights_only(path: Path) -> dict:
    import pickle
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise EmbeddingError(f"{path.name} was refused: its pickle asks to run code "
                             f"({str(e).splitlines()[0][:160]})") from e
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise EmbeddingError(f"{path.name}: damaged or not a PyTorch file ({str(e)[:160]})") from e
    if not isinstance(data, dict):
        raise EmbeddingError(f"{path.name} holds a {type(data).__name__}, not an embedding")
    return data


class EmbeddingLibrary:
    """The embeddings of a folder, read again when its files change; `usable(widths)` gives those that fit
    the loaded text towers and the names skipped (for another family, or unreadable) with the reason."""

    def __init__(self, folder: Path | None = None):
        self.folder = Path(folder) if folder else None
        self._stamp, self._found, self._broken = None, {}, {}
        self._warned: set = set()

    def _files(self) -> list[Path]:
        if self.folder is None or not self.folder.is_dir():
            return []
        found = [p for p in self.folder.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES]
        return sorted(_inside(self.folder, found), key=lambda p: p.stem.lower())

    @property
    def stamp(self) -> tuple:
        """Changes whenever an embedding file is added, removed or rewritten."""
        return tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in self._files())

    def embeddings(self) -> tuple[dict[str, Embedding], dict[str, str]]:
        stamp = self.stamp
        if stamp != self._stamp:
            self._found, self._broken = {}, {}
            for path, _, _ in stamp:
                try:
                    embedding = read_embedding(Path(path))
                    self._found.setdefault(embedding.name, embedding)
                except (EngineError, KeyError, ValueError) as e:
                    self._broken[Path(path).stem] = str(e)
            self._stamp = stamp
        return self._found, self._broken

    def usable(self, widths: list[int]) -> tuple[dict[str, list[torch.Tensor]], dict[str, str]]:
        found, broken = self.embeddings()
        usable, skipped = {}, dict(broken)
        for name, embedding in found.items():
            parts = embedding.for_towers(widths)
            if parts is None:
                shapes = ", ".join(f"{k or 'vectors'} {tuple(v.shape)}" for k, v in embedding.vectors.items())
                skipped[name] = f"made for another model family ({shapes})"
            else:
                usable[name] = parts
        for name, reason in skipped.items():
            if (name, reason, tuple(widths)) not in self._warned:
                self._warned.add((name, reason, tuple(widths)))
                log.warning("embedding %s skipped: %s", name, reason)
        return usable, skipped
