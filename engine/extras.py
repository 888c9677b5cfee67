"""The Extras tab's upscale, as A1111's postprocessing "Upscale" does it: by a factor (optionally held under a
maximum side length) or to a size (optionally cropped to fit, centred), with a first upscaler and a second one
blended over it at a visibility. Returns the picture and A1111's "Postprocess ..." fields."""
from dataclasses import dataclass

from PIL import Image

from .errors import EngineError
from .upscalers import PIXEL_UPSCALERS, pixel_upscaler, upscale

MAX_OUTPUT_SIDE = 8192          # A1111's "Scale to" slider ends here


class ExtrasError(EngineError, ValueError):
    """A setting of the Extras upscale that cannot be carried out; the message says which."""


@dataclass
class ExtrasUpscale:
    upscaler_1: str = "None"        # "None": no upscale
    upscaler_2: str = "None"
    upscaler_2_visibility: float = 0.0
    mode: int = 0                   # 0: scale by `scale`; 1: scale to width x height
    scale: float = 2.0
    max_side_length: int = 0        # 0: no limit
    width: int = 512
    height: int = 512
    crop: bool = True

    def validate(self, upscalers: dict) -> None:
        known = [*PIXEL_UPSCALERS, *upscalers]
        for field, name in (("upscaler 1", self.upscaler_1), ("upscaler 2", self.upscaler_2)):
            if name not in known:
                raise ExtrasError(f"{field}: no upscaler named {name!r}; choose one of: {', '.join(known)}")
        if self.mode not in (0, 1):
            raise ExtrasError(f"resize mode must be 0 (scale by) or 1 (scale to), not {self.mode}")
        if not 0 < self.scale <= 8:
            raise ExtrasError(f"scale by must be above 0 and at most 8, not {self.scale}")
        if self.mode == 1 and not (1 <= self.width <= MAX_OUTPUT_SIDE and 1 <= self.height <= MAX_OUTPUT_SIDE):
            raise ExtrasError(f"scale to takes 1 to {MAX_OUTPUT_SIDE} pixels a side, not {self.width}x{self.height}")
        if not 0 <= self.upscaler_2_visibility <= 1:
            raise ExtrasError("upscaler 2 visibility must be between 0 and 1")
        if self.max_side_length < 0:
            raise ExtrasError("max side length must be 0 (no limit) or more")


def limit_side(width: float, height: float, limit: int) -> tuple[int, int]:
    """A1111's limit_size_by_one_dimention: the longer side brought down to `limit`, keeping the ratio."""
    if height > width and height > limit:
        width, height = limit * width // height, limit
    elif width > limit:
        width, height = limit, limit * height // width
    return int(width), int(height)


def upscale_picture(image: Image.Image, settings: ExtrasUpscale, upscalers: dict | None = None
                    ) -> tuple[Image.Image, dict]:
    """One picture through the Extras upscale; `upscalers` are the model upscalers (name -> step)."""
    upscalers = upscalers or {}
    settings.validate(upscalers)
    image = image.convert("RGB")
    info: dict = {}
    if settings.upscaler_1 == "None":
        return image, info
    mode, scale, width, height, crop = settings.mode, settings.scale, settings.width, settings.height, settings.crop
    if mode == 1:
        scale = max(width / image.width, height / image.height)
        info["Postprocess upscale to"] = f"{width}x{height}"
    else:
        info["Postprocess upscale by"] = scale
        limit = settings.max_side_length
        if limit and max(image.size) * scale > limit:
            mode, crop = 1, False
            width, height = limit_side(image.width * scale, image.height * scale, limit)
            scale = max(width / image.width, height / image.height)
            info["Max side length"] = limit
    if max(image.size) * scale > MAX_OUTPUT_SIDE:
        raise ExtrasError(f"the upscaled picture would be over {MAX_OUTPUT_SIDE} pixels a side")

    def with_upscaler(name: str) -> Image.Image:
        out = upscale(image, scale, pixel_upscaler(name, upscalers))
        if mode == 1 and crop:
            canvas = Image.new("RGB", (width, height))
            canvas.paste(out, box=(width // 2 - out.width // 2, height // 2 - out.height // 2))
            out = canvas
        return out

    result = with_upscaler(settings.upscaler_1)
    if mode == 1 and crop:
        info["Postprocess crop to"] = f"{width}x{height}"
    info["Postprocess upscaler"] = settings.upscaler_1
    if settings.upscaler_2 != "None" and settings.upscaler_2_visibility > 0:
        result = Image.blend(result, with_upscaler(settings.upscaler_2), settings.upscaler_2_visibility)
        info["Postprocess upscaler 2"] = settings.upscaler_2
    return result, info
