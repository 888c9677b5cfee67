"""Preparing img2img and inpainting inputs as A1111 does: resize, mask, crop, fill, and the overlay to restore.

Inpainting with an ordinary checkpoint blends latents: at every step the x_0 estimate keeps the original
latent outside the mask (RePaint-style, as A1111's CFG denoiser does). A 9-channel inpainting UNet also
sees the mask and the masked image's latents as extra input channels.
"""
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import images
from .request import GenerationRequest
from .zero_shot import Projection


@dataclass
class Source:
    image: torch.Tensor | None                   # (1, 3, H, W) in [-1, 1], at the processing size
    pixel_mask: torch.Tensor | None = None       # (1, 1, H, W), 1 = repaint, rounded
    latent_mask: torch.Tensor | None = None      # (1, 1, H/8, W/8), 1 = repaint, rounded
    overlay: Image.Image | None = None           # original pixels to put back outside the mask
    paste_box: tuple[int, int, int, int] | None = None
    infotext: dict = field(default_factory=dict)
    latent: torch.Tensor | None = None           # (1, C, H/8, W/8) scaled latent given instead of a picture
    projection: Projection | None = None         # a zero-shot edit's constraint on pixels


def prepare_source(req: GenerationRequest, downscale: int = 8) -> Source:
    w, h = req.width, req.height
    if req.init_image is None:
        if tuple(req.init_latent.shape[-2:]) != (h // downscale, w // downscale):
            raise ValueError(f"the init latent is {tuple(req.init_latent.shape[-2:])}; {w}x{h} needs "
                             f"{(h // downscale, w // downscale)}")
        return Source(None, latent=req.init_latent)
    image = images.flatten(req.init_image)
    mask = images.prepare_mask(req.mask, req.mask_blur, req.invert_mask) if req.mask is not None else None
    region, overlay_mask, info = None, None, {}
    if mask is not None:
        info["Mask blur"] = req.mask_blur
        if req.inpaint_area == "Only masked":
            overlay_mask = mask
            region = images.crop_region(mask, req.masked_padding, w, h)
            if region is None:   # blank mask: nothing to inpaint, plain img2img
                mask = overlay_mask = None
            else:
                mask = images.resize_image("Resize and fill", mask.crop(region), w, h)
                info["Inpaint area"] = "Only masked"
                info["Masked area padding"] = req.masked_padding
        else:
            mask = images.resize_image(req.resize_mode, mask, w, h)
            overlay_mask = Image.fromarray(np.clip(np.asarray(mask, dtype=np.float32) * 2, 0, 255).astype(np.uint8))
    if region is None:
        image = images.resize_image(req.resize_mode, image, w, h)
    layer = None
    if mask is not None:
        if overlay_mask.size != image.size:
            overlay_mask = images.resize_image(req.resize_mode, overlay_mask, image.width, image.height)
        layer = images.overlay(image, overlay_mask)
    if region is not None:
        image = images.resize_image("Resize and fill", image.crop(region), w, h)
    source = Source(images.to_tensor(image), overlay=layer, infotext=info)
    if region is not None:
        x1, y1, x2, y2 = region
        source.paste_box = (x1, y1, x2 - x1, y2 - y1)
    if mask is not None:
        if req.masked_content != "original":
            source.image = images.to_tensor(images.fill_masked(image, mask))
        if req.masked_content in ("latent noise", "latent nothing"):
            info["Masked content"] = req.masked_content
        pixel = torch.from_numpy(np.asarray(mask, dtype=np.float32) / 255.0)[None, None]
        source.pixel_mask = pixel.round()
        small = mask.convert("RGB").resize((w // downscale, h // downscale))   # Pillow's bicubic, as A1111
        source.latent_mask = torch.from_numpy(np.asarray(small, dtype=np.float32)[..., 0] / 255.0)[None, None].round()
    return source


def inpaint_conditioning(encode, image: torch.Tensor, pixel_mask: torch.Tensor | None) -> torch.Tensor:
    """The 5 extra input channels of an inpainting UNet: mask (1 = repaint) and the masked image's latents.
    `encode` maps images in [-1, 1] to scaled latents."""
    if pixel_mask is None:
        pixel_mask = torch.ones(1, 1, *image.shape[-2:])
    latents = encode(image * (1.0 - pixel_mask))
    small_mask = F.interpolate(pixel_mask, size=latents.shape[-2:]).to(latents.device)
    return torch.cat([small_mask, latents], dim=1)
