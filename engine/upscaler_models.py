"""Model upscalers from A1111's folders (models/ESRGAN, RealESRGAN, SwinIR, DAT, HAT), their architecture
recognised from the weights by spandrel (the library Forge and ComfyUI use), run in overlapping tiles.

Files are read by the project's own loaders (safetensors, or PyTorch's weights-only unpickler), never by a
loader that could run code. A picture is cut into tiles of at most `tile` pixels that overlap by `overlap` on
each side; each output pixel is taken from the one tile in which it lies at least `overlap` pixels from a
cut, so the result equals the untiled one wherever the model's view of a pixel stays inside its tile, and
memory stays bounded whatever the picture's size.
"""
import threading
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .errors import EngineError
from .loading.catalog import CHECKPOINT_SUFFIXES, _inside
from .loading.tensor_files import open_tensors

UPSCALER_FOLDERS = ("ESRGAN", "RealESRGAN", "SwinIR", "DAT", "HAT")
TILE, OVERLAP = 192, 16


class UpscalerModelError(EngineError):
    """A file in an upscaler folder that spandrel cannot read as a super-resolution model."""


def list_upscaler_models(models_dir: Path) -> dict[str, Path]:
    """Upscaler model files by name (file stem), from each of A1111's upscaler folders, sorted by name."""
    found = {}
    for folder in (Path(models_dir) / name for name in UPSCALER_FOLDERS):
        if folder.is_dir():
            files = [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in CHECKPOINT_SUFFIXES]
            for path in _inside(folder, files):
                found.setdefault(path.stem, path)
    return dict(sorted(found.items(), key=lambda item: item[0].lower()))


def load_upscaler(path: Path, device: torch.device = torch.device("cpu")):
    """The spandrel model descriptor of an upscaler file (an image-to-image model with a scale)."""
    import spandrel
    from spandrel.__helpers.canonicalize import canonicalize_state_dict
    source = open_tensors(Path(path))
    state_dict = canonicalize_state_dict({key: source.get(key) for key in source.keys()})
    try:
        model = spandrel.ModelLoader(device).load_from_state_dict(state_dict)
    except (spandrel.UnsupportedModelError, KeyError, ValueError, RuntimeError) as e:
        raise UpscalerModelError(f"{Path(path).name}: not an upscaler architecture spandrel knows "
                                 f"({type(e).__name__}: {str(e)[:160]})") from e
    if not isinstance(model, spandrel.ImageModelDescriptor) or model.purpose not in ("SR", "Restoration"):
        raise UpscalerModelError(f"{Path(path).name} is a {model.architecture.name} {model.purpose} model, "
                                 "not an upscaler")
    return model.eval()


def tiled(model, x: torch.Tensor, tile: int = TILE, overlap: int = OVERLAP) -> torch.Tensor:
    """`model` (1, C, H, W) in [0, 1] -> (1, C, sH, sW), one tile of at most `tile` pixels at a time."""
    _, _, height, width = x.shape
    scale, inner = model.scale, max(tile - 2 * overlap, 1)
    out = None
    for top in range(0, height, inner):
        for left in range(0, width, inner):
            y0, x0 = max(top - overlap, 0), max(left - overlap, 0)
            y1, x1 = min(top + inner + overlap, height), min(left + inner + overlap, width)
            piece = model(x[..., y0:y1, x0:x1])
            if out is None:
                out = x.new_zeros(1, piece.shape[1], height * scale, width * scale)
            keep_h, keep_w = min(inner, height - top), min(inner, width - left)
            oy, ox = (top - y0) * scale, (left - x0) * scale
            out[..., top * scale:(top + keep_h) * scale, left * scale:(left + keep_w) * scale] = \
                piece[..., oy:oy + keep_h * scale, ox:ox + keep_w * scale]
    return out


class ModelUpscalers:
    """The upscaler models of a models folder, each loaded on first use (the last one kept), as the
    `upscalers` mapping the hires fix and Extras take: name -> step(image, scale) -> image x model scale."""

    def __init__(self, models_dir: Path, device: torch.device = torch.device("cpu")):
        self.models_dir, self.device = Path(models_dir), device
        self._loaded: tuple[Path, object] | None = None
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        return list(list_upscaler_models(self.models_dir))

    def scale_of(self, name: str) -> int:
        return self._model(name).scale

    def steps(self) -> dict:
        return {name: (lambda image, scale, name=name: self.upscale_once(name, image)) for name in self.names()}

    def _model(self, name: str):
        path = list_upscaler_models(self.models_dir).get(name)
        if path is None:
            raise UpscalerModelError(f"no upscaler model {name!r} in {', '.join(UPSCALER_FOLDERS)}")
        with self._lock:
            if self._loaded is None or self._loaded[0] != path:
                self._loaded = (path, load_upscaler(path, self.device))
            return self._loaded[1]

    def upscale_once(self, name: str, image: Image.Image) -> Image.Image:
        """One pass of the model over the picture: its size times the model's scale."""
        model = self._model(name)
        x = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
        with torch.inference_mode():
            y = tiled(model, x.to(self.device))
        pixels = (y[0].permute(1, 2, 0).float().cpu().numpy() * 255.0).round().clip(0, 255).astype(np.uint8)
        return Image.fromarray(pixels)
