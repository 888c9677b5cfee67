"""ControlNet through the API as A1111's extension serves it: units in `alwayson_scripts.controlnet.args`,
and /controlnet/version, model_list, module_list, control_types, detect.

As the extension does: a unit without a picture on img2img uses the init image; a unit whose model is None runs
no ControlNet but still detects its map; each unit's detected map comes back after the pictures (unless
`save_detected_map` is false or the module is none); a resolution or threshold out of its slider's range
means the slider's default (said in the answer's warnings)."""
import math
from dataclasses import dataclass, field

import numpy as np
from fastapi import APIRouter
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from engine import EngineError
from engine.control import CONTROL_MODES as UNIT_CONTROL_MODES
from engine.control import ControlUnit
from extensions import MAX_RESOLUTION, MIN_RESOLUTION, AnnotatorError

from ..controlnet import RESIZE_LABELS, pixel_perfect_resolution
from ..studio import Studio
from .controlnet_names import CONTROL_TYPES, control_type, internal_name, label, sliders, studio_name
from .convert import PayloadError, decode_image, encode_image, pick_name
from .schemas import Int

MAX_UNITS = 10                 # the extension's largest "Multi-ControlNet" unit count
MAX_DETECT_IMAGES = 8
DEFAULT_RESOLUTION = 512
RESIZE_BY_LABEL = {label.lower(): mode for mode, label in RESIZE_LABELS.items()}
RESIZE_BY_NUMBER = list(RESIZE_LABELS)                              # 0 just resize, 1 crop, 2 fill
NO_MODEL = {None, "", "None", "none"}


class ControlNetUnitPayload(BaseModel):
    """A unit as the extension's API takes it (its deprecated `input_image` and `guidance` too)."""
    model_config = ConfigDict(extra="allow")

    enabled: bool = True
    module: str = "none"
    weight: float = 1.0
    image: str | dict | None = None
    input_image: str | None = None
    resize_mode: str | int = "Crop and Resize"
    low_vram: bool = False
    processor_res: Int = -1
    threshold_a: float = -1
    threshold_b: float = -1
    guidance_start: float = 0.0
    guidance_end: float = 1.0
    guidance: float | None = None
    pixel_perfect: bool = False
    control_mode: str | int = "Balanced"
    guess_mode: bool = False
    model: str | None = "None"
    save_detected_map: bool = True


class DetectPayload(BaseModel):
    controlnet_module: str = "none"
    controlnet_input_images: list[str] = Field(default_factory=list, max_length=MAX_DETECT_IMAGES)
    controlnet_processor_res: Int = -1
    controlnet_threshold_a: float = -1
    controlnet_threshold_b: float = -1


@dataclass
class ControlPlan:
    """What the units of one request make: the ControlNets to run, the detected maps to send back after the
    pictures, and what was changed on the way (a value out of range replaced by its default)."""
    units: list[ControlUnit] = field(default_factory=list)
    detected_maps: list[Image.Image] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def module_name(studio: Studio, name: str) -> str:
    found = "none" if name == "none" else studio_name(name, studio.annotators.preprocessors)
    if found is None:
        known = ", ".join(["none", *studio.annotators.preprocessors])
        raise PayloadError(f"controlnet module {name!r} is unknown; choose one of: {known}")
    return found


def model_name(studio: Studio, name: str) -> str:
    names = studio.state.controlnet_names()
    found = pick_name(name, names)
    if found is not None:
        return found
    raise PayloadError(f"controlnet model {name!r} not found in {studio.state.controlnet_dir} "
                       f"(have: {', '.join(names) or 'none'})")


def _option(value, by_number: list, by_label: dict, field: str):
    if isinstance(value, int) and 0 <= value < len(by_number):
        return by_number[value]
    if isinstance(value, str) and value.lower() in by_label:
        return by_label[value.lower()]
    raise PayloadError(f"controlnet {field}: {value!r} is not one of {', '.join(map(str, by_number))}")


def detect_map(studio: Studio, module: str, image: np.ndarray, resolution: int, a: float | None,
               b: float | None) -> np.ndarray:
    if module == "none":
        return image
    try:
        return studio.annotators.run(module, image, resolution, a, b)
    except AnnotatorError as e:
        raise PayloadError(str(e)) from e


def as_rgb(found: np.ndarray) -> Image.Image:
    return Image.fromarray((found if found.ndim == 3 else np.stack([found] * 3, axis=2)).astype(np.uint8))


def bound_checked(studio: Studio, module: str, resolution: float, a: float, b: float,
                  warnings: list[str]) -> tuple[int, float | None, float | None]:
    """(resolution, threshold a, threshold b) with each value outside its slider's range replaced by the slider's
    default, as the extension's bound_check_params does (-1, its "default" value, without a warning)."""
    def checked(value, low, high, default, name):
        if isinstance(value, (int, float)) and math.isfinite(value) and low <= value <= high:
            return value
        if value != -1:
            warnings.append(f"[{module}.{name}] Invalid value({value}), using default value {default}")
        return default

    resolution = int(checked(resolution, MIN_RESOLUTION, MAX_RESOLUTION, DEFAULT_RESOLUTION, "processor_res"))
    if module == "none":
        return resolution, None, None
    p = studio.annotators.preprocessors[module]
    a, b = (None if slider is None else checked(value, slider.minimum, slider.maximum, slider.value, name)
            for slider, value, name in ((p.threshold_a, a, "threshold_a"), (p.threshold_b, b, "threshold_b")))
    return resolution, a, b


def control_units(studio: Studio, script: dict | None, width: int, height: int,
                  init_image: Image.Image | None = None) -> ControlPlan:
    """The enabled units of `alwayson_scripts["controlnet"]`, each with its map made and its model loaded;
    `init_image` is img2img's picture, the input of a unit that brings none."""
    plan = ControlPlan()
    if not script:
        return plan
    args = script.get("args") if isinstance(script, dict) else None
    if not isinstance(args, list):
        raise PayloadError('alwayson_scripts.controlnet: expected {"args": [unit, ...]}')
    if len(args) > MAX_UNITS:
        raise PayloadError(f"alwayson_scripts.controlnet: at most {MAX_UNITS} units, not {len(args)}")
    for i, raw in enumerate(args):
        unit = ControlNetUnitPayload.model_validate(raw)
        if not unit.enabled:
            continue
        image = unit.image if unit.image is not None else unit.input_image
        if isinstance(image, dict):
            image = image.get("image")
        if image:
            picture = np.asarray(decode_image(image, f"controlnet unit {i} image").convert("RGB"))
        elif init_image is not None:
            picture = np.asarray(init_image.convert("RGB"))
        else:
            raise PayloadError(f"controlnet unit {i}: no image (txt2img units need one; on img2img a unit without "
                               "one uses the init image)")
        resize = _option(unit.resize_mode, RESIZE_BY_NUMBER, RESIZE_BY_LABEL, "resize_mode")
        control_mode = _option(unit.control_mode, list(UNIT_CONTROL_MODES),
                               {m.lower(): m for m in UNIT_CONTROL_MODES}, "control_mode")
        module = module_name(studio, unit.module)
        resolution, a, b = bound_checked(studio, module, unit.processor_res, unit.threshold_a, unit.threshold_b,
                                         plan.warnings)
        if unit.pixel_perfect:
            resolution = pixel_perfect_resolution(picture, width, height, resize)
        name = None if unit.model in NO_MODEL else model_name(studio, unit.model)   # before any detection
        control = detect_map(studio, module, picture, resolution, a, b)
        if module != "none" and unit.save_detected_map:
            plan.detected_maps.append(Image.fromarray(control.astype(np.uint8)))   # as /detect returns it
        if name is None:                # a preprocessor-only unit: its map, no ControlNet
            continue
        try:
            net = studio.state.controlnet(name)
        except (EngineError, FileNotFoundError) as e:
            raise PayloadError(f"controlnet model {name}: {e}") from e
        end = unit.guidance if unit.guidance is not None else unit.guidance_end
        infotext = (f"Module: {module}, Model: {name}, Weight: {unit.weight}, Resize Mode: {RESIZE_LABELS[resize]}, "
                    f"Processor Res: {resolution if module != 'none' else 'none'}, Guidance Start: "
                    f"{unit.guidance_start}, Guidance End: {end}, Pixel Perfect: {unit.pixel_perfect}, "
                    f"Control Mode: {control_mode}")
        plan.units.append(ControlUnit(net, as_rgb(control), weight=unit.weight, guidance_start=unit.guidance_start,
                                      guidance_end=end, control_mode=control_mode, resize_mode=resize,
                                      guess_mode=unit.guess_mode, infotext=infotext))
    return plan


def controlnet_router(studio: Studio, dependencies: list, route_class) -> APIRouter:
    router = APIRouter(prefix="/controlnet", dependencies=dependencies, route_class=route_class)
    api = studio.annotators

    @router.get("/version")
    def version():
        return {"version": 2}

    @router.get("/model_list")
    def model_list(update: bool = True):
        return {"model_list": studio.state.controlnet_names()}

    @router.get("/module_list")
    def module_list(alias_names: bool = False):
        """Internal names by default, the UI's labels with alias_names=true, as the extension lists them."""
        name = label if alias_names else internal_name
        detail = {name(n): {"model_free": False, "sliders": sliders(p)} for n, p in api.preprocessors.items()}
        return {"module_list": ["none", *map(name, api.preprocessors)],
                "module_detail": {"none": {"model_free": False, "sliders": []}, **detail}}

    @router.get("/control_types")
    def control_types():
        models = studio.state.controlnet_names()
        return {"control_types": {name: control_type(name, api.preprocessors, models) for name in CONTROL_TYPES}}

    @router.post("/detect")
    def detect(payload: DetectPayload):
        module = module_name(studio, payload.controlnet_module)
        if not payload.controlnet_input_images:
            raise PayloadError("controlnet_input_images: send at least one picture")
        warnings = []
        resolution, a, b = bound_checked(studio, module, payload.controlnet_processor_res,
                                         payload.controlnet_threshold_a, payload.controlnet_threshold_b, warnings)
        images = []
        for i, data in enumerate(payload.controlnet_input_images):
            picture = np.asarray(decode_image(data, f"controlnet_input_images[{i}]").convert("RGB"))
            found = detect_map(studio, module, picture, resolution, a, b)
            images.append(encode_image(Image.fromarray(found.astype(np.uint8))))
        return {"images": images, "info": "Success", **({"warnings": warnings} if warnings else {})}

    return router
