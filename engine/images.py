"""Pixel-side helpers of img2img and inpainting, with A1111's conventions (Pillow and OpenCV do the work)."""
import cv2
import numpy as np
import torch
from PIL import Image, ImageFilter, ImageOps

RESIZE_MODES = ("Just resize", "Crop and resize", "Resize and fill")
MASKED_CONTENT = ("fill", "original", "latent noise", "latent nothing")


def to_tensor(image: Image.Image) -> torch.Tensor:
    """PIL RGB -> (1, 3, H, W) in [-1, 1]."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1)[None]


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """(B, 3, H, W) in [-1, 1] -> PIL images (rounded to the nearest level)."""
    array = ((images.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(a) for a in array]


def flatten(image: Image.Image, background=(255, 255, 255)) -> Image.Image:
    """Any mode (RGBA, LA, P, CMYK, 16-bit, EXIF-rotated) -> RGB, transparency over `background`."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        image = Image.fromarray((np.asarray(image, dtype=np.float64) / 257).clip(0, 255).astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGBA", rgba.size, (*background, 255))
        flat.alpha_composite(rgba)
        return flat.convert("RGB")
    return image.convert("RGB")


def resize_image(mode: str, image: Image.Image, width: int, height: int) -> Image.Image:
    """A1111's resize modes: stretch; crop to the aspect ratio then resize; fit then fill by stretching edges."""
    if mode == "Just resize":
        return image.resize((width, height), Image.LANCZOS)
    ratio, src_ratio = width / height, image.width / image.height
    fit_width = (mode == "Crop and resize") == (ratio > src_ratio)
    src_w = width if fit_width else image.width * height // image.height
    src_h = image.height * width // image.width if fit_width else height
    resized = image.resize((src_w, src_h), Image.LANCZOS)
    result = Image.new(image.mode, (width, height))
    result.paste(resized, box=(width // 2 - src_w // 2, height // 2 - src_h // 2))
    if mode == "Crop and resize":
        return result
    if mode != "Resize and fill":
        raise ValueError(f"resize mode must be one of {', '.join(RESIZE_MODES)}")
    if ratio < src_ratio:   # bars above and below
        fill = height // 2 - src_h // 2
        if fill > 0:
            result.paste(resized.resize((width, fill), box=(0, 0, width, 0)), box=(0, 0))
            result.paste(resized.resize((width, fill), box=(0, resized.height, width, resized.height)),
                         box=(0, fill + src_h))
    elif ratio > src_ratio:   # bars left and right
        fill = width // 2 - src_w // 2
        if fill > 0:
            result.paste(resized.resize((fill, height), box=(0, 0, 0, height)), box=(0, 0))
            result.paste(resized.resize((fill, height), box=(resized.width, 0, resized.width, height)),
                         box=(fill + src_w, 0))
    return result


def prepare_mask(mask: Image.Image, blur: int, invert: bool = False) -> Image.Image:
    """White = repaint. Alpha masks use their alpha; binarised at 50 %, then Gaussian-blurred (A1111's kernel)."""
    mask = ImageOps.exif_transpose(mask)
    if mask.mode in ("RGBA", "LA"):
        mask = mask.getchannel("A")
    mask = mask.convert("L").point(lambda v: 255 if v > 128 else 0)
    if invert:
        mask = ImageOps.invert(mask)
    if blur > 0:
        size = 2 * int(2.5 * blur + 0.5) + 1
        array = cv2.GaussianBlur(np.asarray(mask), (size, 1), blur)
        mask = Image.fromarray(cv2.GaussianBlur(array, (1, size), blur))
    return mask


def crop_region(mask: Image.Image, padding: int, width: int, height: int) -> tuple[int, int, int, int] | None:
    """The mask's bounding box plus padding, grown to the processing aspect ratio ("Inpaint area: Only masked")."""
    box = mask.getbbox()
    if box is None:
        return None
    x1, y1, x2, y2 = box
    x1, y1, x2, y2 = max(x1 - padding, 0), max(y1 - padding, 0), min(x2 + padding, mask.width), min(y2 + padding, mask.height)
    if (x2 - x1) / (y2 - y1) > width / height:
        y1, y2 = _grow(y1, y2, int((x2 - x1) * height / width - (y2 - y1)), mask.height)
    else:
        x1, x2 = _grow(x1, x2, int((y2 - y1) * width / height - (x2 - x1)), mask.width)
    return x1, y1, x2, y2


def _grow(lo: int, hi: int, extra: int, limit: int) -> tuple[int, int]:
    lo, hi = lo - extra // 2, hi + extra - extra // 2
    if hi >= limit:
        lo, hi = lo - (hi - limit), limit
    if lo < 0:
        lo, hi = 0, hi - lo
    return lo, min(hi, limit)


def fill_masked(image: Image.Image, mask: Image.Image) -> Image.Image:
    """Masked content "fill": the hole painted with ever finer blurs of the colours around it."""
    result = Image.new("RGBA", image.size)
    kept = Image.new("RGBa", image.size)
    kept.paste(image.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(mask.convert("L")))
    for radius, repeats in [(256, 1), (64, 1), (16, 2), (4, 4), (2, 2), (0, 1)]:
        blurred = kept.filter(ImageFilter.GaussianBlur(radius)).convert("RGBA")
        for _ in range(repeats):
            result.alpha_composite(blurred)
    return result.convert("RGB")


def overlay(original: Image.Image, overlay_mask: Image.Image) -> Image.Image:
    """The original's pixels outside the (blurred) mask, as an RGBA layer to put over the result."""
    layer = Image.new("RGBa", original.size)
    layer.paste(original.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(overlay_mask.convert("L")))
    return layer.convert("RGBA")


def apply_overlay(image: Image.Image, layer: Image.Image | None, paste_box: tuple | None) -> Image.Image:
    """Paste a crop back where it came from ("Only masked"), then keep the original outside the mask."""
    if layer is None:
        return image
    if paste_box is not None:
        x, y, w, h = paste_box
        base = Image.new("RGBA", layer.size)
        base.paste(resize_image("Crop and resize", image, w, h), (x, y))
        image = base
    image = image.convert("RGBA")
    image.alpha_composite(layer)
    return image.convert("RGB")
