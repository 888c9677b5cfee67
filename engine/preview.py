"""Live previews of latents during sampling: a linear map, the small "VAE approx" network, the tiny TAESD
decoder (engine.models.tiny_vae), or the full VAE.

All four take scaled latents (B, 4, h, w) as the sampler holds them and return images in [0, 1].
"""
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .loading.tensor_files import open_tensors

# latent channel -> RGB, fitted for SD1.x latents (the "Approx cheap" coefficients A1111 uses)
SD1_LATENT_RGB = torch.tensor([
    [0.298, 0.207, 0.208],
    [0.187, 0.286, 0.173],
    [-0.158, 0.189, 0.264],
    [-0.184, -0.271, -0.473],
])

PREVIEW_METHODS = ("Approx cheap", "Approx NN", "TAESD", "Full")   # A1111's names


def linear_preview(latents: torch.Tensor, latent_rgb: torch.Tensor = SD1_LATENT_RGB) -> torch.Tensor:
    """A per-pixel linear map of the latent channels to RGB: nearly free, at latent resolution.
    `latent_rgb` is (C, 3), or (C + 1, 3) with a bias row last."""
    weights = latent_rgb.to(latents.device, torch.float32)
    rgb = torch.einsum("blhw,lr->brhw", latents.float(), weights[:latents.shape[1]])
    if len(weights) > latents.shape[1]:
        rgb = rgb + weights[-1][None, :, None, None]
    return (rgb * 0.5 + 0.5).clamp(0, 1)


@torch.no_grad()
def fit_latent_rgb(encode, size: int = 32) -> torch.Tensor:
    """Least-squares latent -> RGB map (C + 1, 3) for a VAE: flat images of the RGB cube's corners and grey,
    encoded with `encode` (pixels in [-1, 1] -> scaled latents), paired with their colours."""
    levels = torch.tensor([-1.0, 1.0])
    colours = torch.cartesian_prod(levels, levels, levels)
    colours = torch.cat([colours, torch.zeros(1, 3), torch.full((1, 3), 0.5), torch.full((1, 3), -0.5)])
    latents = encode(colours[:, :, None, None].expand(-1, -1, size, size).contiguous()).float().cpu()
    h, w = latents.shape[2:]
    features = latents[:, :, h // 4:h - h // 4, w // 4:w - w // 4].mean(dim=(2, 3))     # away from the borders
    design = torch.cat([features, torch.ones(len(features), 1)], dim=1)
    return torch.linalg.lstsq(design, colours).solution


class VAEApprox(nn.Module):
    """Eight small convolutions from latents to RGB at twice the latent size (A1111's "Approx NN")."""

    def __init__(self, latent_channels: int = 4):
        super().__init__()
        widths = [latent_channels, 8, 16, 32, 64, 32, 16, 8, 3]
        kernels = [7, 5, 3, 3, 3, 3, 3, 3]
        for i, k in enumerate(kernels):
            setattr(self, f"conv{i + 1}", nn.Conv2d(widths[i], widths[i + 1], k))

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(latents, (latents.shape[2] * 2, latents.shape[3] * 2))
        x = F.pad(x, (11, 11, 11, 11))
        for i in range(8):
            x = F.leaky_relu(getattr(self, f"conv{i + 1}")(x), 0.1)
        return (x * 0.5 + 0.5).clamp(0, 1)

    @classmethod
    def load(cls, path: Path) -> "VAEApprox":
        source = open_tensors(path)
        model = cls(source.shape("conv1.weight")[1])
        model.load_state_dict({k: source.get(k) for k in source.keys()}, strict=True)
        return model.eval().requires_grad_(False)


def find_vae_approx(models_dir: Path) -> Path | None:
    """The SD1 VAE-approx weights in models/VAE-approx/, if the user put them there."""
    folder = Path(models_dir) / "VAE-approx"
    for name in ("model.pt", "vaeapprox-sd15.pt", "vae_approx_sd1.pt"):
        if (folder / name).is_file():
            return folder / name
    return None


class Previewer:
    """Turns the sampler's current x_0 estimate into a preview image with the chosen method."""

    def __init__(self, method: str = "Approx cheap", vae=None, approx: VAEApprox | None = None,
                 latent_rgb: torch.Tensor = SD1_LATENT_RGB, tiny=None):
        """`tiny`: the model's TAESD (a TinyAutoencoder) for the "TAESD" method."""
        if method not in PREVIEW_METHODS:
            raise ValueError(f"preview method must be one of {', '.join(PREVIEW_METHODS)}")
        if (method == "Approx NN" and approx is None) or (method == "TAESD" and tiny is None):
            method = "Approx cheap"   # no weights in models/VAE-approx: fall back to the free preview
        self.method, self.vae, self.approx, self.latent_rgb, self.tiny = method, vae, approx, latent_rgb, tiny

    @torch.no_grad()
    def __call__(self, latents: torch.Tensor) -> torch.Tensor:
        if self.method == "Full" and self.vae is not None:
            images = self.vae.decode((latents / self.vae.scaling_factor).to(self.vae.dtype)).float()
            return (images * 0.5 + 0.5).clamp(0, 1)
        if self.method == "TAESD":
            return (self.tiny.decode(latents.to(self.tiny.dtype)).float() * 0.5 + 0.5).clamp(0, 1)
        if self.method == "Approx NN":
            return self.approx(latents.float().to(self.approx.conv1.weight.device))
        return linear_preview(latents, self.latent_rgb)
