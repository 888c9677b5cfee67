"""ControlNet units in a generation, with the controls A1111's ControlNet extension gives them.

Each unit runs its ControlNet on the current latents and control map; the residuals of all units are
summed and enter the UNet's skip connections and middle block. Per unit:

- weight, scaling all 13 residuals (SD1.x);
- guidance start / end: the unit is active only while step / steps lies within [start, end];
- control mode: "Balanced" (weight everywhere), "My prompt is more important" (soft injection: residual i
  of n scaled by 0.825^(n-1-i), shallow layers least), "ControlNet is more important" (soft injection, and
  the unconditional half of classifier-free guidance gets no control, so CFG amplifies it);
- guess mode (diffusers): scales rising from 0.1 to 1 (logspace) and no control on the unconditional half;
- shuffle-type models (global pooling) also leave the unconditional half alone, as the extension does.
"""
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from . import images
from .control_map import fit_map
from .models.controlnet import ControlNetModel

CONTROL_MODES = ("Balanced", "My prompt is more important", "ControlNet is more important")
SOFT_INJECTION_BASE = 0.825


@dataclass
class ControlUnit:
    model: ControlNetModel
    image: Image.Image                    # the control map, already preprocessed
    weight: float = 1.0
    guidance_start: float = 0.0
    guidance_end: float = 1.0
    control_mode: str = "Balanced"
    resize_mode: str = "Crop and resize"
    guess_mode: bool = False
    infotext: str = ""                    # "Module: canny, Model: ..., ..." for the picture's parameters

    def validate(self, require) -> None:
        require(self.image is not None, "a ControlNet unit needs a control image")
        require(0 <= self.weight <= 2, f"ControlNet weight must be between 0 and 2, not {self.weight}")
        require(0 <= self.guidance_start <= self.guidance_end <= 1,
                "ControlNet guidance start and end must satisfy 0 <= start <= end <= 1")
        require(self.control_mode in CONTROL_MODES, f"control mode must be one of: {', '.join(CONTROL_MODES)}")
        require(self.resize_mode in images.RESIZE_MODES,
                f"ControlNet resize mode must be one of: {', '.join(images.RESIZE_MODES)}")

    @property
    def cond_only(self) -> bool:
        return (self.control_mode == CONTROL_MODES[2] or self.guess_mode
                or self.model.config.global_pool_conditions)

    def scales(self, n: int) -> list[float]:
        if self.guess_mode:
            return (torch.logspace(-1, 0, n) * self.weight).tolist()
        if self.control_mode != CONTROL_MODES[0]:
            return [self.weight * SOFT_INJECTION_BASE ** float(n - 1 - i) for i in range(n)]
        return [self.weight] * n


def control_hint(image: Image.Image, width: int, height: int, resize_mode: str) -> torch.Tensor:
    """The control map as the ControlNet reads it: RGB in [0, 1], (1, 3, height, width), fitted to the picture
    as A1111's extension fits it (engine.control_map)."""
    picture = fit_map(np.asarray(images.flatten(image).convert("RGB")), width, height, resize_mode)
    return torch.from_numpy(picture.astype(np.float32) / 255.0).permute(2, 0, 1)[None]


class Control:
    """The summed residuals of several units for one UNet evaluation (engine.sampling.Denoiser calls it)."""

    def __init__(self, units: list[ControlUnit], width: int, height: int, sigmas: torch.Tensor,
                 device: torch.device):
        self.units = units
        self.hints = [control_hint(u.image, width, height, u.resize_mode).to(device) for u in units]
        self.sigmas = sigmas.to(device).float()

    def progress(self, sigma: torch.Tensor) -> float:
        """step / steps of the current evaluation, from where sigma lies in the run's schedule."""
        steps = len(self.sigmas) - 1
        step = int((self.sigmas[:-1] > sigma.max().float() * (1 + 1e-4)).sum())
        return step / steps if steps else 0.0

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, t: torch.Tensor, context: torch.Tensor,
                 is_cond: torch.Tensor, added: dict | None = None) -> tuple[list[torch.Tensor], torch.Tensor] | None:
        """x: the UNet's (scaled) latent input, 4 channels; is_cond: (B,) 1 for rows of the prompt, 0 for the
        negative prompt; `added`: SDXL's micro-conditioning of those rows. None when no unit is active."""
        fraction = self.progress(sigma)
        total_down, total_mid = None, None
        for unit, hint in zip(self.units, self.hints):
            if not unit.guidance_start <= fraction <= unit.guidance_end or unit.weight == 0:
                continue
            model = unit.model
            down, mid = model(x.to(model.dtype), t, context.to(model.dtype),
                              hint.expand(x.shape[0], -1, -1, -1).to(model.dtype), **(added or {}))
            scales = unit.scales(len(down) + 1)
            mask = is_cond.to(x.dtype)[:, None, None, None] if unit.cond_only else 1.0
            down = [d * (s * mask) for d, s in zip(down, scales)]
            mid = mid * (scales[-1] * mask)
            if total_down is None:
                total_down, total_mid = down, mid
            else:
                total_down = [a + b for a, b in zip(total_down, down)]
                total_mid = total_mid + mid
        return None if total_down is None else (total_down, total_mid)
