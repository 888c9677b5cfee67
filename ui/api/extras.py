"""A1111's Extras and upscaler routes: /extra-single-image, /extra-batch-images, /upscalers,
/latent-upscale-modes, /realesrgan-models."""
import re

from fastapi import APIRouter
from pydantic import BaseModel, Field

from engine.extras import ExtrasUpscale, upscale_picture
from engine.upscaler_models import list_upscaler_models
from engine.upscalers import LATENT_UPSCALE_MODES, PIXEL_UPSCALERS

from ..jobs import Job
from ..studio import Studio
from .convert import PayloadError, decode_image, encode_image
from .schemas import Int
from .shown_paths import ShownPaths

MAX_BATCH = 32


class ExtrasPayload(BaseModel):
    resize_mode: Int = 0
    show_extras_results: bool = True
    gfpgan_visibility: float = 0.0
    codeformer_visibility: float = 0.0
    codeformer_weight: float = 0.0
    upscaling_resize: float = 2.0
    upscaling_resize_w: Int = 512
    upscaling_resize_h: Int = 512
    upscaling_crop: bool = True
    upscaler_1: str = "None"
    upscaler_2: str = "None"
    extras_upscaler_2_visibility: float = 0.0
    upscale_first: bool = False


class ExtrasSinglePayload(ExtrasPayload):
    image: str = ""


class NamedImage(BaseModel):
    data: str
    name: str = ""


class ExtrasBatchPayload(ExtrasPayload):
    imageList: list[NamedImage] = Field(default_factory=list, max_length=MAX_BATCH)


def settings_of(p: ExtrasPayload) -> ExtrasUpscale:
    for field in ("gfpgan_visibility", "codeformer_visibility"):
        if getattr(p, field) > 0:
            raise PayloadError(f"{field}: there is no face restoration here (/sdapi/v1/face-restorers is empty)")
    return ExtrasUpscale(upscaler_1=p.upscaler_1 or "None", upscaler_2=p.upscaler_2 or "None",
                         upscaler_2_visibility=p.extras_upscaler_2_visibility, mode=p.resize_mode,
                         scale=p.upscaling_resize, width=p.upscaling_resize_w, height=p.upscaling_resize_h,
                         crop=p.upscaling_crop)


def html_info(fields: dict) -> str:
    return ", ".join(f"{k}: {v}" for k, v in fields.items())


def name_scale(name: str) -> int | None:
    """The factor a model's file name states ("4x-UltraSharp", "RealESRGAN_x4plus"), as A1111's page reads it."""
    found = re.search(r"(\d)[xX]|[xX](\d)", name)
    return int(found.group(1) or found.group(2)) if found else None


def extras_router(studio: Studio, dependencies: list, route_class, shown: ShownPaths) -> APIRouter:
    router = APIRouter(prefix="/sdapi/v1", dependencies=dependencies, route_class=route_class)
    state = studio.state

    def folder_of(path):
        """Which of A1111's upscaler folders holds the file (ESRGAN, RealESRGAN, SwinIR, DAT, HAT)."""
        return path.relative_to(state.models_dir).parts[0]

    def run(pictures, payload: ExtrasPayload):
        settings = settings_of(payload)
        steps = state.upscalers.steps()
        settings.validate(steps)
        job = Job("api-extras")
        return studio.jobs.run(job, lambda: [upscale_picture(p, settings, steps) for p in pictures])

    @router.post("/extra-single-image")
    def extra_single_image(payload: ExtrasSinglePayload):
        (image, info), = run([decode_image(payload.image, "image")], payload)
        return {"html_info": html_info(info), "image": encode_image(image) if payload.show_extras_results else None}

    @router.post("/extra-batch-images")
    def extra_batch_images(payload: ExtrasBatchPayload):
        pictures = [decode_image(item.data, f"imageList[{i}].data") for i, item in enumerate(payload.imageList)]
        done = run(pictures, payload)
        return {"html_info": html_info(done[0][1]) if done else "",
                "images": [encode_image(image) for image, _ in done] if payload.show_extras_results else []}

    @router.get("/upscalers")
    def upscalers():
        models = list_upscaler_models(state.models_dir)
        built_in = [{"name": name, "model_name": None, "model_path": None, "model_url": None, "scale": 4}
                    for name in PIXEL_UPSCALERS]
        return built_in + [{"name": name, "model_name": folder_of(path), "model_path": shown.path(path),
                            "model_url": None, "scale": name_scale(name) or 4} for name, path in models.items()]

    @router.get("/latent-upscale-modes")
    def latent_upscale_modes():
        return [{"name": name} for name in LATENT_UPSCALE_MODES]

    @router.get("/realesrgan-models")
    def realesrgan_models():
        return [{"name": name, "path": shown.path(path), "scale": name_scale(name) or 4}
                for name, path in list_upscaler_models(state.models_dir).items() if folder_of(path) == "RealESRGAN"]

    return router
