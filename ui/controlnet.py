"""The ControlNet tab: one sub-tab per mode (canny, mlsd, ...), each a control image, a preprocessor with a
preview of its map, a model filtered to the mode, the unit settings of A1111's extension, and txt2img's
generation settings."""
from dataclasses import dataclass, fields

import gradio as gr
import numpy as np
from PIL import Image

from engine import EngineError
from engine.control import CONTROL_MODES, ControlUnit
from engine.images import RESIZE_MODES
from extensions import CONTROL_MODES as MODES, MAX_RESOLUTION, MIN_RESOLUTION, AnnotatorError

from .generation_form import build_request, prompt_box, sampling_controls
from .results import results_panel, run_generation
from .studio import Destination, Studio, Tab

# words in a ControlNet file name that say which mode it serves (A1111's extension filters the same way)
MODEL_KEYWORDS = {"canny": ("canny", "edge"), "mlsd": ("mlsd", "edge"), "scribble": ("scribble", "edge"),
                  "softedge": ("softedge", "hed", "pidi", "edge"), "openpose": ("openpose", "pose"),
                  "seg": ("seg",), "depth": ("depth",), "normal": ("normal",), "lineart": ("lineart", "edge"),
                  "shuffle": ("shuffle",)}
DEFAULT_PREPROCESSOR = {"canny": "canny", "scribble": "invert", "lineart": "lineart_standard", "mlsd": "mlsd_opencv",
                        "shuffle": "shuffle", "normal": "depth_to_normal", "softedge": "softedge_pidinet",
                        "openpose": "openpose"}
NONE_NOTE = "none: the upload is already a control map."
RESIZE_LABELS = {"Just resize": "Just Resize", "Crop and resize": "Crop and Resize",   # as the extension's infotext
                 "Resize and fill": "Resize and Fill"}


def models_for(mode: str, names: list[str]) -> list[str]:
    return [n for n in names if any(word in n.lower() for word in MODEL_KEYWORDS[mode])]


def slider_args(spec) -> dict:
    """A threshold slider as the preprocessor declares it, or a hidden one."""
    if spec is None:
        return {"visible": False, "value": 0}
    return {"minimum": spec.minimum, "maximum": spec.maximum, "value": spec.value, "step": spec.step,
            "label": spec.label, "visible": True}


def pixel_perfect_resolution(image: np.ndarray, width: int, height: int, resize_mode: str) -> int:
    """A1111's pixel-perfect processor resolution: the picture's short side scaled as it will be resized
    (within the resolution's range: a derived value, so it is kept in range rather than refused)."""
    raw_h, raw_w = image.shape[:2]
    k_h, k_w = height / raw_h, width / raw_w
    k = min(k_h, k_w) if resize_mode == "Resize and fill" else max(k_h, k_w)
    return min(max(int(np.round(k * min(raw_h, raw_w))), MIN_RESOLUTION), MAX_RESOLUTION)


def as_array(value) -> np.ndarray | None:
    """The upload (or the scribble canvas) as an RGB uint8 array; None when empty."""
    if isinstance(value, dict):       # ImageEditor: the composite of the canvas and its strokes, or an upload
        value = value.get("composite") if value.get("composite") is not None else value.get("background")
    if value is None:
        return None
    image = value if isinstance(value, Image.Image) else Image.fromarray(np.asarray(value))
    if image.mode in ("RGBA", "LA", "P"):
        image = image.convert("RGBA")
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, image)
    return np.asarray(image.convert("RGB"))


def build_mode(studio: Studio, mode: str):
    """Lay out one mode's sub-tab; returns (UnitForm, prompt box, sampling controls, results panel)."""
    api, state = studio.annotators, studio.state
    tab_id = f"cn_{mode}"
    last_seed = gr.State(None)
    box = prompt_box(studio, tab_id, prompt="")
    choices = ["none", *[p.name for p in api.for_mode(mode)]]
    default = DEFAULT_PREPROCESSOR.get(mode, "none")
    if default not in choices or default == "none" or api.availability(default):
        default = "none"
    with gr.Row():
        with gr.Column(scale=3):
            with gr.Row():
                if mode == "scribble":
                    # no starting value: with one, the first upload on this sub-tab never reaches the server
                    upload = gr.ImageEditor(value=None, canvas_size=(512, 512), format="png",
                                            sources=("upload", "clipboard"), label="Draw (black on white) or upload",
                                            placeholder="Upload a drawing, or pick the brush and draw", type="pil",
                                            height=320,
                                            brush=gr.Brush(colors=["#000000"], color_mode="fixed"),
                                            elem_id=f"{tab_id}_image")
                else:
                    upload = gr.Image(label="Control image" + (" (a pose picture)" if mode == "openpose" else ""),
                                      type="numpy", sources=["upload", "clipboard"], height=320,
                                      elem_id=f"{tab_id}_image")
                detected = gr.Image(label="Detected map", type="numpy", interactive=False, height=320,
                                    elem_id=f"{tab_id}_map", format="png")
            with gr.Row():
                preprocessor = gr.Dropdown(choices, value=default, label="Preprocessor",
                                           elem_id=f"{tab_id}_preprocessor")
                preview = gr.Button("Preview map", size="sm", elem_id=f"{tab_id}_preview_map")
                use_map = gr.Button("Use map as input", size="sm", elem_id=f"{tab_id}_use_map")
            note = gr.Markdown(NONE_NOTE if default == "none" else api.preprocessors[default].note,
                               elem_id=f"{tab_id}_note")
            with gr.Row():
                pixel_perfect = gr.Checkbox(False, label="Pixel perfect")
                resolution = gr.Slider(64, 2048, value=512, step=8, label="Processor resolution")
            initial = api.preprocessors.get(default)
            with gr.Row():
                threshold_a = gr.Slider(**slider_args(initial.threshold_a if initial else None))
                threshold_b = gr.Slider(**slider_args(initial.threshold_b if initial else None))
            with gr.Row():
                found = models_for(mode, state.controlnet_names())
                model = gr.Dropdown(found, value=found[0] if found else None, label="Model",
                                    elem_id=f"{tab_id}_model", scale=4)
                refresh = gr.Button("Refresh", size="sm", scale=1)
            with gr.Row():
                weight = gr.Slider(0, 2, value=1, step=0.05, label="Control weight", elem_id=f"{tab_id}_weight")
                start = gr.Slider(0, 1, value=0, step=0.01, label="Starting control step")
                end = gr.Slider(0, 1, value=1, step=0.01, label="Ending control step")
            control_mode = gr.Radio(list(CONTROL_MODES), value=CONTROL_MODES[0], label="Control mode")
            with gr.Row():
                resize_mode = gr.Radio(list(RESIZE_MODES), value="Crop and resize", label="Resize mode")
                guess_mode = gr.Checkbox(False, label="Guess mode (no prompt needed)", elem_id=f"{tab_id}_guess")
            also_use = gr.Checkbox(False, label="Also use this unit when generating from another ControlNet tab",
                                   elem_id=f"{tab_id}_also_use")
            controls = sampling_controls(studio, tab_id, last_seed)
        with gr.Column(scale=2):
            panel = results_panel(studio, tab_id, last_seed)
    studio.forms[tab_id] = (box, controls)
    studio.destinations[f"ControlNet {mode}"] = Destination(f"ControlNet {mode}", "controlnet", upload, box.prompt,
                                                            box.negative, studio.controlnet_tabs, tab_id)

    def on_preprocessor(name):
        p = api.preprocessors.get(name)
        sliders = [gr.Slider(**slider_args(spec)) for spec in (p.threshold_a if p else None,
                                                                 p.threshold_b if p else None)]
        message = (api.availability(name) or p.note) if p else NONE_NOTE
        return message, *sliders

    preprocessor.change(on_preprocessor, preprocessor, [note, threshold_a, threshold_b], queue=False)
    refresh.click(lambda: gr.Dropdown(choices=models_for(mode, state.controlnet_names())), outputs=model,
                  queue=False)

    def on_preview(image, name, res, perfect, a, b, width, height, resize):
        return control_map(api, mode, image, name, res, perfect, a, b, width, height, resize)[0]

    preview.click(on_preview, [upload, preprocessor, resolution, pixel_perfect, threshold_a, threshold_b,
                               controls.width, controls.height, resize_mode], detected)

    def on_use_map(detected_map):
        if detected_map is None:
            raise gr.Error("Preview a map first.")
        if mode != "scribble":
            return detected_map, "none"
        sheet = Image.fromarray(detected_map)
        return {"background": sheet, "layers": [], "composite": sheet}, "none"

    use_map.click(on_use_map, detected, [upload, preprocessor], queue=False)
    return UnitForm(mode, upload, preprocessor, resolution, pixel_perfect, threshold_a, threshold_b, model, weight,
                    start, end, control_mode, resize_mode, guess_mode, also_use), box, controls, panel


@dataclass
class UnitForm:
    """One mode's ControlNet unit as laid out on its sub-tab."""
    mode: str
    upload: gr.components.Component
    preprocessor: gr.Dropdown
    resolution: gr.Slider
    pixel_perfect: gr.Checkbox
    threshold_a: gr.Slider
    threshold_b: gr.Slider
    model: gr.Dropdown
    weight: gr.Slider
    start: gr.Slider
    end: gr.Slider
    control_mode: gr.Radio
    resize_mode: gr.Radio
    guess_mode: gr.Checkbox
    also_use: gr.Checkbox

    def components(self) -> list:
        return [getattr(self, f.name) for f in fields(self) if f.name != "mode"]


def control_map(api, mode, image, name, res, perfect, a, b, width, height, resize):
    """(map as an array, preprocessor used, processor resolution or None)."""
    picture = as_array(image)
    if picture is None:
        raise gr.Error(f"ControlNet {mode}: " + ("draw or upload first." if mode == "scribble"
                                                 else "upload a control image first."))
    if name == "none":
        return picture, "none", None
    if perfect:
        res = pixel_perfect_resolution(picture, int(width), int(height), resize)
    try:
        return api.run(name, picture, int(res), a, b), name, int(res)
    except AnnotatorError as e:
        raise gr.Error(str(e)) from e


def make_unit(studio: Studio, form: UnitForm, values: dict, width: int, height: int) -> ControlUnit:
    """The engine's unit from a sub-tab's values, its map made for a width x height picture."""
    v = {c: values[c] for c in form.components()}
    if not v[form.model]:
        raise gr.Error(f"ControlNet {form.mode}: choose a model - put one in {studio.state.controlnet_dir} "
                       f"(e.g. control_v11p_sd15_{form.mode}.pth) and press Refresh.")
    image, used, res = control_map(studio.annotators, form.mode, v[form.upload], v[form.preprocessor],
                                   v[form.resolution], v[form.pixel_perfect], v[form.threshold_a],
                                   v[form.threshold_b], width, height, v[form.resize_mode])
    try:
        net = studio.state.controlnet(v[form.model])
    except (EngineError, FileNotFoundError) as e:
        raise gr.Error(f"ControlNet {v[form.model]}: {e}") from e
    infotext = (f"Module: {used}, Model: {v[form.model]}, Weight: {v[form.weight]}, "
                f"Resize Mode: {RESIZE_LABELS[v[form.resize_mode]]}, Processor Res: {res or 'none'}, "
                f"Guidance Start: {v[form.start]}, Guidance End: {v[form.end]}, "
                f"Pixel Perfect: {v[form.pixel_perfect]}, Control Mode: {v[form.control_mode]}")
    rgb = image if image.ndim == 3 else np.stack([image] * 3, axis=2)
    return ControlUnit(net, Image.fromarray(rgb), weight=float(v[form.weight]), guidance_start=float(v[form.start]),
                       guidance_end=float(v[form.end]), control_mode=v[form.control_mode],
                       resize_mode=v[form.resize_mode], guess_mode=bool(v[form.guess_mode]), infotext=infotext)


def wire_generate(studio: Studio, own: UnitForm, box, controls, panel, forms: list[UnitForm]) -> None:
    """Generate on a mode's sub-tab: its own unit, plus every other sub-tab's unit marked "also use"."""
    def run(values):
        width, height = int(values[controls.width]), int(values[controls.height])
        units = [make_unit(studio, own, values, width, height)]
        units += [make_unit(studio, f, values, width, height) for f in forms if f is not own and values[f.also_use]]
        yield from run_generation(studio, "controlnet", build_request(box, controls, values, control_units=units))

    inputs = {*box.components(), *controls.components(), *[c for f in forms for c in f.components()]}
    box.generate.click(run, inputs, panel.outputs(), concurrency_limit=1, concurrency_id="generate",
                       show_progress="minimal", show_progress_on=panel.progress)


def build(studio: Studio) -> None:
    gr.Markdown("ControlNet models go in `models/ControlNet` (A1111's file names, e.g. `control_v11p_sd15_canny.pth`);"
                " annotator weights in `models/annotators`. Preprocessor **none** uses the upload as the map.")
    built = []
    with gr.Tabs() as studio.controlnet_tabs:
        for mode in MODES:
            with gr.Tab(mode, id=f"cn_{mode}"):
                built.append(build_mode(studio, mode))
    forms = [form for form, *_ in built]
    for form, box, controls, panel in built:
        wire_generate(studio, form, box, controls, panel, forms)


TAB = Tab("controlnet", "ControlNet", build, receives=tuple(f"ControlNet {m}" for m in MODES))
