"""ControlNet through the API as A1111's extension serves it: units in `alwayson_scripts.controlnet.args`,
and /controlnet/version, model_list, module_list, control_types, detect."""
import numpy as np
from fastapi import APIRouter
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from engine import EngineError
from engine.control import CONTROL_MODES as UNIT_CONTROL_MODES
from engine.control import ControlUnit
from extensions import CONTROL_MODES, MAX_RESOLUTION, MIN_RESOLUTION, AnnotatorError

from ..controlnet import DEFAULT_PREPROCESSOR, RESIZE_LABELS, models_for, pixel_perfect_resolution
from ..studio import Studio
from .convert import PayloadError, decode_image, encode_image, pick_name
from .schemas import Int

MAX_UNITS = 10                 # the extension's largest "Multi-ControlNet" unit count
MAX_DETECT_IMAGES = 8
DEFAULT_RESOLUTION = 512
RESIZE_BY_LABEL = {label.lower(): mode for mode, label in RESIZE_LABELS.items()}
RESIZE_BY_NUMBER = list(RESIZE_LABELS)                              # 0 just resize, 1 crop, 2 fill
ALIASES = {"depth": "depth_midas", "hed": "softedge_hed", "pidinet": "softedge_pidinet", "normal_map": "normal_midas",
           "lineart": "lineart_realistic", "pidinet_scribble": "scribble_pidinet", "fake_scribble": "scribble_hed",
           "mlsd_large": "mlsd", "openpose_full": "openpose", "None": "none"}


class ControlNetUnitPayload(BaseModel):
    """A unit as the extension's API takes it (its deprecated `input_image` and `guidance` too)."""
    model_config = ConfigDict(extra="allow")

    enabled: bool = True
    module: str = "none"
    model: str = "None"
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


class DetectPayload(BaseModel):
    controlnet_module: str = "none"
    controlnet_input_images: list[str] = Field(default_factory=list, max_length=MAX_DETECT_IMAGES)
    controlnet_processor_res: Int = 512
    controlnet_threshold_a: float = -1
    controlnet_threshold_b: float = -1


def module_name(studio: Studio, name: str) -> str:
    name = ALIASES.get(name, name)
    if name != "none" and name not in studio.annotators.preprocessors:
        known = ", ".join(["none", *studio.annotators.preprocessors])
        raise PayloadError(f"controlnet module {name!r} is unknown; choose one of: {known}")
    return name


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


def detect_map(studio: Studio, module: str, image: np.ndarray, resolution: int, a: float, b: float) -> np.ndarray:
    if module == "none":
        return image
    try:
        return studio.annotators.run(module, image, resolution, None if a < 0 else a, None if b < 0 else b)
    except AnnotatorError as e:
        raise PayloadError(str(e)) from e


def processor_resolution(value: int, field: str, negative_is_default: bool) -> int:
    """A unit's negative processor_res means the default 512, as the extension's check_unit has it; /detect
    passes its value straight on in the extension, so there a negative one is refused like any out of range."""
    if value < 0 and negative_is_default:
        return DEFAULT_RESOLUTION
    if not MIN_RESOLUTION <= value <= MAX_RESOLUTION:
        raise PayloadError(f"{field}: the processor resolution must be between {MIN_RESOLUTION} and {MAX_RESOLUTION}"
                           + (" (or negative for the default 512)" if negative_is_default else "") + f", not {value}")
    return value


def control_units(studio: Studio, script: dict | None, width: int, height: int) -> list[ControlUnit]:
    """The enabled units of `alwayson_scripts["controlnet"]`, each with its map made and its model loaded."""
    if not script:
        return []
    args = script.get("args") if isinstance(script, dict) else None
    if not isinstance(args, list):
        raise PayloadError('alwayson_scripts.controlnet: expected {"args": [unit, ...]}')
    if len(args) > MAX_UNITS:
        raise PayloadError(f"alwayson_scripts.controlnet: at most {MAX_UNITS} units, not {len(args)}")
    units = []
    for i, raw in enumerate(args):
        unit = ControlNetUnitPayload.model_validate(raw)
        if not unit.enabled:
            continue
        image = unit.image if unit.image is not None else unit.input_image
        if isinstance(image, dict):
            image = image.get("image")
        if not image:
            raise PayloadError(f"controlnet unit {i}: no image")
        picture = np.asarray(decode_image(image, f"controlnet unit {i} image").convert("RGB"))
        resize = _option(unit.resize_mode, RESIZE_BY_NUMBER, RESIZE_BY_LABEL, "resize_mode")
        control_mode = _option(unit.control_mode, list(UNIT_CONTROL_MODES),
                               {m.lower(): m for m in UNIT_CONTROL_MODES}, "control_mode")
        module = module_name(studio, unit.module)
        resolution = processor_resolution(unit.processor_res, f"controlnet unit {i} processor_res", True)
        if unit.pixel_perfect:
            resolution = pixel_perfect_resolution(picture, width, height, resize)
        control = detect_map(studio, module, picture, resolution, unit.threshold_a, unit.threshold_b)
        name = model_name(studio, unit.model)
        try:
            net = studio.state.controlnet(name)
        except (EngineError, FileNotFoundError) as e:
            raise PayloadError(f"controlnet model {name}: {e}") from e
        end = unit.guidance if unit.guidance is not None else unit.guidance_end
        rgb = control if control.ndim == 3 else np.stack([control] * 3, axis=2)
        infotext = (f"Module: {module}, Model: {name}, Weight: {unit.weight}, Resize Mode: {RESIZE_LABELS[resize]}, "
                    f"Processor Res: {resolution if module != 'none' else 'none'}, Guidance Start: "
                    f"{unit.guidance_start}, Guidance End: {end}, Pixel Perfect: {unit.pixel_perfect}, "
                    f"Control Mode: {control_mode}")
        units.append(ControlUnit(net, Image.fromarray(rgb.astype(np.uint8)), weight=unit.weight,
                                 guidance_start=unit.guidance_start, guidance_end=end, control_mode=control_mode,
                                 resize_mode=resize, guess_mode=unit.guess_mode, infotext=infotext))
    return units


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
        names = ["none", *api.preprocessors]
        detail = {name: {"model_free": not api.preprocessors[name].weights,
                         "sliders": [{"name": s.label, "min": s.minimum, "max": s.maximum, "value": s.value,
                                      "step": s.step} for s in (api.preprocessors[name].threshold_a,
                                                                api.preprocessors[name].threshold_b) if s]}
                  for name in api.preprocessors}
        return {"module_list": names, "module_detail": detail}

    @router.get("/control_types")
    def control_types():
        models = studio.state.controlnet_names()
        types = {}
        for mode in CONTROL_MODES:
            mode_models = models_for(mode, models)
            types[mode.capitalize()] = {"module_list": ["none", *(p.name for p in api.for_mode(mode))],
                                        "model_list": ["None", *mode_models],
                                        "default_option": DEFAULT_PREPROCESSOR.get(mode, "none"),
                                        "default_model": mode_models[0] if mode_models else "None"}
        return {"control_types": types}

    @router.post("/detect")
    def detect(payload: DetectPayload):
        module = module_name(studio, payload.controlnet_module)
        if not payload.controlnet_input_images:
            raise PayloadError("controlnet_input_images: send at least one picture")
        images = []
        for i, data in enumerate(payload.controlnet_input_images):
            picture = np.asarray(decode_image(data, f"controlnet_input_images[{i}]").convert("RGB"))
            resolution = processor_resolution(payload.controlnet_processor_res, "controlnet_processor_res", False)
            found = detect_map(studio, module, picture, resolution,
                               payload.controlnet_threshold_a, payload.controlnet_threshold_b)
            images.append(encode_image(Image.fromarray(found.astype(np.uint8))))
        return {"images": images, "info": "Success"}

    return router
