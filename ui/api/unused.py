"""A1111 fields this app accepts but does not act on: each one set to something other than "off" is named in
`info["warnings"]`, so a client learns its request was not carried out in full; scripts it does not have are
refused as A1111 refuses them. Clients such as webuiapi send every field with its default, which says nothing."""
import math

from engine.sampling import SCHEDULE_NAMES

from .convert import PayloadError, known_schedule
from .sd_upscale import is_sd_upscale
from .xyz import is_xyz
from .schemas import GenerationPayload, Img2ImgPayload

OFF = {   # field -> the values that ask for nothing
    "seed_resize_from_h": (None, -1, 0), "seed_resize_from_w": (None, -1, 0),
    "restore_faces": (None, False), "firstphase_width": (None, 0),
    "firstphase_height": (None, 0),
    "s_churn": (None, 0), "s_tmin": (None, 0), "s_tmax": (None, 0, math.inf), "s_min_uncond": (None, 0),
    "disable_extra_networks": (None, False), "initial_noise_multiplier": (None, 1),
    "latent_mask": (None, ""), "override_settings_restore_afterwards": (None, True),
}
WHY = {
    "firstphase_width": "A1111's legacy first-pass size; the first pass is width x height, the hires one hr_scale "
                        "or hr_resize_x/y times it", "firstphase_height": "as firstphase_width",
    "restore_faces": "there is no face restoration",
    "override_settings_restore_afterwards": "overrides always apply to this request only",
}
ANY_VALUE = {   # more A1111 fields: they matter only with a feature warned about above, or ask for nothing
    "comments", "force_task_id", "infotext", "mask_round",
}
SETTINGS_USED = {"sd_model_checkpoint", "CLIP_stop_at_last_layers", "eta_noise_seed_delta", "sd_vae_decode_method"}
ALWAYSON_SCRIPTS = {"controlnet", "zero-shot edit"}
MAX_SCRIPT_ARGS = 64


def refuse_missing_scripts(payload: GenerationPayload) -> None:
    """A1111 answers 422 for a script it does not have; so does this app (it has the X/Y/Z plot)."""
    if payload.script_name and not is_xyz(payload.script_name) and not is_sd_upscale(payload.script_name):
        raise PayloadError(f"script_name: no script {payload.script_name!r} here (selectable: x/y/z plot, "
                           "sd upscale; alwayson_scripts: controlnet, zero-shot edit)")
    if len(payload.script_args or []) > MAX_SCRIPT_ARGS:
        raise PayloadError(f"script_args: at most {MAX_SCRIPT_ARGS} values")
    for name in payload.alwayson_scripts or {}:
        if str(name).lower() not in ALWAYSON_SCRIPTS:
            raise PayloadError(f"alwayson_scripts: always-on script {name!r} not found (served: controlnet, "
                              "zero-shot edit)")


def unused_field_warnings(payload: GenerationPayload) -> list[str]:
    values = {**{k: getattr(payload, k) for k in type(payload).model_fields}, **(payload.model_extra or {})}
    warnings = []
    for name, value in values.items():
        if name in OFF:
            if not any(_same(value, off) for off in OFF[name]):
                warnings.append(f"{name}: ignored ({WHY.get(name, 'not available in this app')})")
        elif name not in type(payload).model_fields and name not in ANY_VALUE:
            warnings.append(f"{name}: not a field of the API; ignored")
    if payload.scheduler and known_schedule(payload.scheduler) is None:
        warnings.append(f"scheduler: {payload.scheduler!r} is not a schedule type here; Automatic was used, as "
                        f"A1111 does (schedule types: {', '.join(SCHEDULE_NAMES)})")
    hr_scheduler = getattr(payload, "hr_scheduler", None)
    if getattr(payload, "enable_hr", False) and hr_scheduler and known_schedule(hr_scheduler) is None \
            and hr_scheduler not in ("Use same scheduler",):
        warnings.append(f"hr_scheduler: {hr_scheduler!r} is not a schedule type here; Automatic was used")
    for key in payload.override_settings or {}:
        if key not in SETTINGS_USED:
            warnings.append(f"override_settings.{key}: ignored (settings applied per request: "
                            f"{', '.join(sorted(SETTINGS_USED))})")
    if isinstance(payload, Img2ImgPayload) and len(payload.init_images) > 1:
        warnings.append(f"init_images: only the first of {len(payload.init_images)} pictures is used")
    return warnings


def _same(value, off) -> bool:
    return type(value) is type(off) and value == off if isinstance(off, (bool, list)) else value == off
