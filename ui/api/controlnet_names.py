"""sd-webui-controlnet's names for what this studio calls its preprocessors, sliders and ControlNet modes, so
that the extension's API clients find what they expect (its scripts/processor.py and global_state.py).

Each preprocessor has an internal name (`module_list?alias_names=false`, the extension's default) and a label
(`alias_names=true`, what its UI shows); this studio's own name is the label, except for two the extension
labels with a hint. Preprocessors the extension does not have keep this studio's name for both.
"""
from ..controlnet import DEFAULT_PREPROCESSOR, models_for

INTERNAL = {"invert": "invert", "scribble_pidinet": "pidinet_scribble", "softedge_pidinet": "pidinet",
            "depth_midas": "depth", "normal_midas": "normal_map", "softedge_hed": "hed",
            "lineart_realistic": "lineart"}
LABEL = {"invert": "invert (from white bg & black line)",
         "lineart_standard": "lineart_standard (from white bg & black line)"}
OLD_NAMES = {"fake_scribble": "scribble_hed", "mlsd_large": "mlsd", "None": "none"}   # accepted, never listed

RESOLUTION_SLIDER = {"name": "Preprocessor Resolution", "value": 512, "min": 64, "max": 2048}

# the extension's control types (its preprocessor_filters: name -> default preprocessor label), in its order,
# and the studio's mode behind each; the ones without a mode here list only "none" and their matching models
CONTROL_TYPES = {"All": ("none", None), "Canny": ("canny", "canny"), "Depth": ("depth_midas", "depth"),
                 "NormalMap": ("normal_bae", "normal"), "OpenPose": ("openpose_full", "openpose"),
                 "MLSD": ("mlsd", "mlsd"), "Lineart": (LABEL["lineart_standard"], "lineart"),
                 "SoftEdge": ("softedge_pidinet", "softedge"), "Scribble/Sketch": ("scribble_pidinet", "scribble"),
                 "Segmentation": ("seg_ofade20k", "seg"), "Shuffle": ("shuffle", "shuffle"),
                 "Tile/Blur": ("tile_resample", None), "Inpaint": ("inpaint_only", None), "InstructP2P": ("none", None),
                 "Reference": ("reference_only", None), "Recolor": ("recolor_luminance", None),
                 "Revision": ("revision_clipvision", None), "T2I-Adapter": ("none", None),
                 "IP-Adapter": ("ip-adapter_clip_sd15", None), "Instant_ID": ("instant_id", None)}
TYPE_WORDS = {"instructp2p": ["ip2p"], "segmentation": ["seg"], "normalmap": ["normal"],
              "t2i-adapter": ["t2i_adapter", "t2iadapter", "t2ia"], "ip-adapter": ["ip_adapter", "ipadapter"],
              "scribble/sketch": ["scribble", "sketch"], "tile/blur": ["tile", "blur"], "openpose": ["openpose"]}


def internal_name(name: str) -> str:
    return INTERNAL.get(name, name)


def label(name: str) -> str:
    return LABEL.get(name, name)


def studio_name(name: str, known) -> str | None:
    """This studio's preprocessor for an internal name, a label or its own name; None when unknown."""
    if name in OLD_NAMES:
        return OLD_NAMES[name]
    for ours in known:
        if name in (ours, internal_name(ours), label(ours)):
            return ours
    return None


def sliders(preprocessor) -> list[dict]:
    """The extension's slider list: the processor resolution, then the preprocessor's own thresholds."""
    found = [RESOLUTION_SLIDER]
    for slider in (preprocessor.threshold_a, preprocessor.threshold_b):
        if slider is not None:
            found.append({"name": slider.label, "value": slider.value, "min": slider.minimum, "max": slider.maximum,
                          **({"step": slider.step} if slider.step != 1 else {})})
    return found


def default_model(models: list[str]) -> str:
    """As the extension picks it: the first matching model, or the first with "11" (a v1.1 model) in its name."""
    if len(models) == 1:
        return "None"
    return next((m for m in models if "11" in m.split("[")[0]), models[1])


def control_type(name: str, preprocessors: dict, models: list[str]) -> dict:
    """One entry of /controlnet/control_types: module_list (labels), model_list, default_option, default_model."""
    extension_default, mode = CONTROL_TYPES[name]
    if name == "All":
        return {"module_list": ["none", *map(label, preprocessors)], "model_list": ["None", *models],
                "default_option": "none", "default_model": "None"}
    words = [name.lower(), *TYPE_WORDS.get(name.lower(), [])]
    matching = [m for m in models if any(w in m.lower() for w in words)]
    if mode is not None:
        matching = list(dict.fromkeys(models_for(mode, models) + matching))
    modules = ["none", *(label(n) for n, p in preprocessors.items() if mode in p.modes)]
    ours = label(DEFAULT_PREPROCESSOR.get(mode, "none"))
    option = next((o for o in (extension_default, ours) if o in modules), modules[0])
    model_list = ["None", *matching]
    return {"module_list": modules, "model_list": model_list, "default_option": option,
            "default_model": default_model(model_list)}
