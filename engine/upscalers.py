"""Upscalers by A1111's names: the latent modes (interpolating the latent itself), and the pixel upscalers
(None, Lanczos, Nearest, and model upscalers such as ESRGAN from `engine.upscaler_models`).

A pixel upscaler is applied as A1111's `Upscaler.upscale` does: its own step (a model's fixed 4x, or a
resize by the whole factor) repeated up to three times until the picture is at least the asked size, then a
Lanczos resize to exactly that size.
"""
from typing import Callable, Protocol

import torch
import torch.nn.functional as F
from PIL import Image

from .errors import EngineError

# A1111's shared.latent_upscale_modes: name -> (torch interpolation mode, antialias)
LATENT_UPSCALE_MODES = {
    "Latent": ("bilinear", False),
    "Latent (antialiased)": ("bilinear", True),
    "Latent (bicubic)": ("bicubic", False),
    "Latent (bicubic antialiased)": ("bicubic", True),
    "Latent (nearest)": ("nearest", False),
    "Latent (nearest-exact)": ("nearest-exact", False),
}
PIXEL_UPSCALERS = ("None", "Lanczos", "Nearest")


class UnknownUpscalerError(EngineError, ValueError):
    """An upscaler name that is none of the latent modes, the built-in ones or the model files found."""


class PixelUpscaler(Protocol):
    """One step of a pixel upscaler: the picture made larger by its own factor (`scale` for the resizers)."""
    def __call__(self, image: Image.Image, scale: float) -> Image.Image: ...


def _resizer(resample: int) -> PixelUpscaler:
    return lambda image, scale: image.resize((int(image.width * scale), int(image.height * scale)), resample=resample)


BUILT_IN: dict[str, PixelUpscaler] = {"Lanczos": _resizer(Image.LANCZOS), "Nearest": _resizer(Image.NEAREST)}


def upscale(image: Image.Image, scale: float, step: PixelUpscaler, should_stop: Callable[[], bool] = lambda: False,
            ) -> Image.Image:
    """A1111's Upscaler.upscale: `step` until the picture reaches its size times `scale` (at most three
    times, stopping when a step changes nothing), then Lanczos to that size rounded down to a multiple of 8."""
    width, height = int(image.width * scale // 8 * 8), int(image.height * scale // 8 * 8)
    for i in range(3):
        if image.width >= width and image.height >= height and (i > 0 or scale != 1):
            break
        if should_stop():
            break
        before = image.size
        image = step(image, scale)
        if image.size == before:
            break
    if image.size != (width, height):
        image = image.resize((width, height), resample=Image.LANCZOS)
    return image


def resize_with(image: Image.Image, width: int, height: int, name: str,
                models: dict[str, PixelUpscaler] | None = None) -> Image.Image:
    """A1111's resize_image(0, image, width, height, upscaler_name): scale up with the named upscaler when the
    picture is smaller, then Lanczos to exactly width x height. "None" (and any grey picture) is Lanczos alone."""
    image = image.convert("RGB") if image.mode not in ("RGB", "L") else image
    if name == "None" or image.mode == "L":
        return image.resize((width, height), resample=Image.LANCZOS)
    step = pixel_upscaler(name, models)
    scale = max(width / image.width, height / image.height)
    if scale > 1.0:
        image = upscale(image, scale, step)
    if image.size != (width, height):
        image = image.resize((width, height), resample=Image.LANCZOS)
    return image


def pixel_upscaler(name: str, models: dict[str, PixelUpscaler] | None = None) -> PixelUpscaler:
    found = {**BUILT_IN, **(models or {})}
    if name not in found:
        raise UnknownUpscalerError(f"no upscaler named {name!r}; choose one of: "
                                   f"{', '.join([*LATENT_UPSCALE_MODES, *PIXEL_UPSCALERS, *(models or {})])}")
    return found[name]


def upscale_latent(latent: torch.Tensor, width: int, height: int, mode: str, downscale: int = 8) -> torch.Tensor:
    """A latent interpolated to the latent size of width x height, as A1111's latent hires fix does."""
    interpolation, antialias = LATENT_UPSCALE_MODES[mode]
    size = (height // downscale, width // downscale)
    return F.interpolate(latent.float(), size=size, mode=interpolation, antialias=antialias)
