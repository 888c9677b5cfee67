"""Between A1111's API payloads and the engine: base64 pictures, requests, and the `info` JSON it returns."""
import base64
import binascii
import io
import json
import time
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from engine import GenerationRequest, GenerationResult
from engine.hires import HiresFix
from engine.images import MASKED_CONTENT, RESIZE_MODES
from engine.request import INPAINT_AREAS, MAX_IMAGE_SIDE
from engine.sampling import SAMPLERS, SCHEDULE_NAMES

from .schemas import GenerationPayload, Img2ImgPayload, Txt2ImgPayload


MAX_PICTURE_BYTES = 45 * 1024 * 1024        # 60 MB in base64: one fits within the request body limit (64 MB)


class PayloadError(ValueError):
    """A field a client sent cannot be used; the message names it (answered with 422)."""


def decode_image(data: str, field: str) -> Image.Image:
    """A base64 picture, with or without a `data:image/...;base64,` prefix. Links are refused: the app is offline."""
    if not isinstance(data, str) or not data:
        raise PayloadError(f"{field}: expected a base64-encoded picture")
    if data.startswith(("http://", "https://")):
        raise PayloadError(f"{field}: links are not fetched (this app works offline); send the picture as base64")
    if data.startswith("data:image/"):
        data = data.split(";", 1)[1].split(",", 1)[-1]
    if len(data) * 3 // 4 > MAX_PICTURE_BYTES:
        raise PayloadError(f"{field}: the picture is over {MAX_PICTURE_BYTES // 2**20} MB")
    unreadable = (binascii.Error, UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError)
    try:
        image = Image.open(io.BytesIO(base64.b64decode(data, validate=False)))
    except unreadable as e:
        raise PayloadError(f"{field}: not a readable base64 picture ({e})") from None
    if max(image.size) > MAX_IMAGE_SIDE:      # read from the header, before any pixel is decoded
        raise PayloadError(f"{field}: the picture is {image.size[0]}x{image.size[1]}; at most "
                           f"{MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE} is taken")
    try:
        image.load()
    except unreadable as e:
        raise PayloadError(f"{field}: not a readable base64 picture ({e})") from None
    return image


def encode_image(image: Image.Image) -> str:
    """PNG with its infotext, base64 (A1111's default samples format)."""
    from PIL.PngImagePlugin import PngInfo
    info = PngInfo()
    if "parameters" in image.info:
        info.add_text("parameters", image.info["parameters"])
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return base64.b64encode(buffer.getvalue()).decode()


def pick_name(wanted: str, names: list[str]) -> str | None:
    """The listed name a client means: by full name, file name or stem; A1111's " [hash]" suffix ignored.
    Only names in the list can come back, so nothing outside a model folder is ever reached."""
    wanted = wanted.split(" [")[0].strip()
    return next((n for n in names if wanted in (n, Path(n).stem, Path(n).name)), None)


def schedule_id(label: str) -> str:
    """A1111's id of a schedule type: "SGM Uniform" -> "sgm_uniform"."""
    return label.lower().replace(" ", "_")


def known_schedule(name: str | None) -> str | None:
    """The schedule type a client means, by A1111 label or id in any case ("Karras", "sgm_uniform",
    "SGMUniform"); None for a name that is not one."""
    wanted = (name or "Automatic").lower().replace("_", " ")
    return {**{s.lower(): s for s in SCHEDULE_NAMES}, "sgmuniform": "SGM Uniform"}.get(wanted)


def sampler_and_schedule(payload: GenerationPayload) -> tuple[str, str]:
    """A1111 accepts "DPM++ 2M Karras" (older clients) as well as sampler + scheduler, names in any case.
    A scheduler it does not know means "Automatic" there, and here (`info["warnings"]` says so)."""
    return named_sampler(payload.sampler_name or payload.sampler_index or "Euler", payload.scheduler, "sampler_name")


def named_sampler(name: str, scheduler: str | None, field: str) -> tuple[str, str]:
    schedule = known_schedule(scheduler) or "Automatic"
    by_lower = {s.lower(): s for s in SAMPLERS}
    if name.lower() not in by_lower and schedule == "Automatic":
        for label in SCHEDULE_NAMES:
            if name.lower().endswith(" " + label.lower()) and name[: -len(label) - 1].lower() in by_lower:
                name, schedule = name[: -len(label) - 1], label
                break
    if name.lower() not in by_lower:
        raise PayloadError(f"{field}: unknown sampler {name!r}; choose one of: {', '.join(SAMPLERS)}")
    return by_lower[name.lower()], schedule


def to_request(payload: GenerationPayload, native_size: int, clip_skip: int = 1) -> GenerationRequest:
    sampler, schedule = sampler_and_schedule(payload)
    fields = dict(prompt=payload.prompt, negative_prompt=payload.negative_prompt or "", sampler=sampler,
                  schedule=schedule, steps=payload.steps, cfg_scale=payload.cfg_scale,
                  width=payload.width or native_size, height=payload.height or native_size, seed=payload.seed,
                  subseed=payload.subseed, subseed_strength=payload.subseed_strength,
                  batch_size=payload.batch_size, batch_count=payload.n_iter, eta=payload.eta,
                  s_noise=payload.s_noise, clip_skip=clip_skip, tiling=bool(payload.tiling))
    if payload.refiner_switch_at is not None:
        fields["refiner_switch_at"] = payload.refiner_switch_at
    if isinstance(payload, Img2ImgPayload):
        fields.update(img2img_fields(payload))
    elif isinstance(payload, Txt2ImgPayload) and payload.enable_hr:
        fields["hires"] = hires_fix(payload, sampler, schedule)
    return GenerationRequest(**fields)


SAME = (None, "", "Use same sampler", "Use same scheduler", "Use same checkpoint")   # A1111's "same as first pass"


def hires_fix(p: Txt2ImgPayload, sampler: str, schedule: str) -> HiresFix:
    """A1111's hr_* fields. The checkpoint name is checked by the caller, which opens it."""
    hr_sampler, hr_schedule = None, None
    if p.hr_sampler_name not in SAME:
        hr_sampler, hr_schedule = named_sampler(p.hr_sampler_name, p.hr_scheduler, "hr_sampler_name")
    elif p.hr_scheduler not in SAME:
        hr_schedule = known_schedule(p.hr_scheduler) or "Automatic"
    return HiresFix(upscaler=p.hr_upscaler or "Latent", scale=p.hr_scale, resize_x=p.hr_resize_x,
                    resize_y=p.hr_resize_y, steps=p.hr_second_pass_steps,
                    denoising_strength=0.7 if p.denoising_strength is None else p.denoising_strength,
                    sampler=hr_sampler, schedule=hr_schedule, prompt=p.hr_prompt, negative_prompt=p.hr_negative_prompt,
                    checkpoint=None if p.hr_checkpoint_name in SAME else p.hr_checkpoint_name)


def img2img_fields(p: Img2ImgPayload) -> dict:
    if not p.init_images:
        raise PayloadError("init_images: img2img needs at least one picture")
    if not 0 <= p.resize_mode <= 3:
        raise PayloadError("resize_mode: 0 (just resize), 1 (crop and resize), 2 (resize and fill) or 3")
    if not 0 <= p.inpainting_fill < len(MASKED_CONTENT):
        raise PayloadError("inpainting_fill: 0 (fill), 1 (original), 2 (latent noise) or 3 (latent nothing)")
    resize_mode = RESIZE_MODES[p.resize_mode] if p.resize_mode < 3 else RESIZE_MODES[0]   # 3: latent upscale
    fields = dict(init_image=decode_image(p.init_images[0], "init_images[0]"),
                  denoising_strength=p.denoising_strength, resize_mode=resize_mode)
    if p.mask:
        fields.update(mask=decode_image(p.mask, "mask").convert("L"),
                      mask_blur=p.mask_blur if p.mask_blur is not None else max(p.mask_blur_x, p.mask_blur_y),
                      masked_content=MASKED_CONTENT[p.inpainting_fill], invert_mask=bool(p.inpainting_mask_invert),
                      inpaint_area=INPAINT_AREAS[1] if p.inpaint_full_res else INPAINT_AREAS[0],
                      masked_padding=p.inpaint_full_res_padding)
    return fields


def info_json(payload: GenerationPayload, request: GenerationRequest, result: GenerationResult, model_name: str,
              model_hash: str, vae_name: str | None, warnings: list[str] | None = None) -> str:
    """The `info` string of A1111's responses (its Processed.js())."""
    n = len(result.images)
    return json.dumps({
        "prompt": request.prompt, "all_prompts": [request.prompt] * n,
        "negative_prompt": request.negative_prompt, "all_negative_prompts": [request.negative_prompt] * n,
        "seed": result.seeds[0] if result.seeds else request.seed, "all_seeds": result.seeds[:n],
        "subseed": result.subseeds[0] if result.subseeds else request.subseed, "all_subseeds": result.subseeds[:n],
        "subseed_strength": request.subseed_strength, "width": request.width, "height": request.height,
        "sampler_name": request.sampler, "cfg_scale": request.cfg_scale, "steps": request.steps,
        "batch_size": request.batch_size, "restore_faces": False, "face_restoration_model": None,
        "sd_model_name": model_name, "sd_model_hash": model_hash or None, "sd_vae_name": vae_name,
        "sd_vae_hash": None, "seed_resize_from_w": -1, "seed_resize_from_h": -1,
        "denoising_strength": (request.hires.denoising_strength if request.hires is not None
                               else request.denoising_strength if request.is_img2img else None),
        "extra_generation_params": {}, "index_of_first_image": result.grids, "infotexts": result.infotexts,
        "styles": payload.styles or [], "job_timestamp": time.strftime("%Y%m%d%H%M%S"),
        "clip_skip": request.clip_skip, "is_using_inpainting_conditioning": False,
        "interrupted": result.interrupted, "warnings": warnings or [],
    })
