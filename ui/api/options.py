"""A1111's /options as this app keeps them: the settings it acts on, and every other option a client sets,
stored and answered back; and naming a checkpoint as A1111 clients do."""
import json

from engine.request import DECODE_METHODS

from ..model_state import AUTOMATIC_VAE
from ..outputs import SAMPLES_FORMATS
from ..studio import Studio
from .convert import PayloadError, pick_name
from .shown_paths import ShownPaths


def checkpoint_name(studio: Studio, wanted: str, field: str = "sd_model_checkpoint") -> str:
    """A1111 clients name a checkpoint by title ("name [hash]"), file name or stem."""
    names = studio.state.checkpoint_names()
    found = pick_name(wanted, names)
    if found is not None:
        return found
    raise PayloadError(f"{field}: no checkpoint {wanted.split(' [')[0].strip()!r} in "
                       f"{studio.state.checkpoint_dir} "
                       f"(have: {', '.join(names) or 'none'})")


def decode_method(value) -> str:
    """A1111's sd_vae_decode_method: "Full" or "TAESD"."""
    if value not in DECODE_METHODS:
        raise PayloadError(f"sd_vae_decode_method: one of {', '.join(DECODE_METHODS)}, not {value!r}")
    return value


def current_options(studio: Studio, shown: ShownPaths) -> dict:
    s, pipe = studio.settings, studio.state.pipeline
    title = studio.state.loading            # right after start-up: the checkpoint being loaded
    if pipe is not None:
        title = f"{pipe.name} [{pipe.model_hash}]" if pipe.model_hash else pipe.name
    return {**s.api_options, "sd_model_checkpoint": title, "sd_vae": s.vae, "CLIP_stop_at_last_layers": s.clip_skip,
            "samples_save": s.save_outputs, "samples_format": s.samples_format,
            "outdir_samples": shown.path(studio.outdir),
            "live_previews_enable": s.preview_method != "None", "show_progress_every_n_steps": s.preview_every,
            "sd_vae_decode_method": s.decode_method,
            "sd_checkpoint_hash": pipe.model_hash if pipe is not None else None}


SETTABLE_OPTIONS = ("sd_model_checkpoint", "sd_vae", "CLIP_stop_at_last_layers", "samples_save", "samples_format",
                    "sd_vae_decode_method")
ACTED_ON_AS_STORED = ("eta_noise_seed_delta",)     # kept with the others, read by each generation
MAX_STORED_OPTIONS, MAX_OPTION_CHARS = 500, 10_000


def apply_options(studio: Studio, options: dict) -> list[str]:
    """Set what this app has of A1111's options; a checkpoint name loads that model (a 422 if it cannot).
    Returns the keys it has no such option for (answered as warnings)."""
    s = studio.settings
    if "sd_model_checkpoint" in options:
        name = checkpoint_name(studio, str(options["sd_model_checkpoint"]))
        status = studio.state.load(name)
        if not status.startswith("Loaded"):
            raise PayloadError(f"sd_model_checkpoint: {status}")
    if "sd_vae" in options:
        name = str(options["sd_vae"])
        name = AUTOMATIC_VAE if name in ("Automatic", "None", "") else (pick_name(name, studio.state.vae_names())
                                                                        or name)
        message = studio.state.set_vae(name)
        if "not used" in message:
            raise PayloadError(f"sd_vae: {message}")
        s.vae = name
    if "CLIP_stop_at_last_layers" in options:
        value = options["CLIP_stop_at_last_layers"]
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 1 <= value <= 12 \
                or value != int(value):
            raise PayloadError(f"CLIP_stop_at_last_layers: a whole number from 1 to 12, not {value!r}")
        s.clip_skip = int(value)
    if "samples_save" in options:
        if not isinstance(options["samples_save"], bool):
            raise PayloadError(f"samples_save: true or false, not {options['samples_save']!r}")
        s.save_outputs = options["samples_save"]
    if "sd_vae_decode_method" in options:
        s.decode_method = decode_method(options["sd_vae_decode_method"])
    if "samples_format" in options:
        fmt = str(options["samples_format"]).lower()
        if fmt not in SAMPLES_FORMATS:
            raise PayloadError(f"samples_format: one of {', '.join(SAMPLES_FORMATS)}, not {options['samples_format']!r}")
        s.samples_format = fmt
    others = {k: v for k, v in options.items() if k not in SETTABLE_OPTIONS}
    for key, value in others.items():
        if len(json.dumps(value, default=str)) > MAX_OPTION_CHARS:
            raise PayloadError(f"{key}: at most {MAX_OPTION_CHARS:,} characters of JSON")
    if len({**s.api_options, **others}) > MAX_STORED_OPTIONS:
        raise PayloadError(f"at most {MAX_STORED_OPTIONS} options are kept")
    s.api_options.update(others)                # stored and answered back, as A1111 keeps every option
    studio.save_settings()
    return [key for key in others if key not in ACTED_ON_AS_STORED]
