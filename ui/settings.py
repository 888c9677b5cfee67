"""User settings that outlive a restart, kept as JSON beside the app (A1111 keeps config.json likewise)."""
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from engine.preview import PREVIEW_METHODS
from engine.request import DECODE_METHODS
from engine.sampling import SAMPLERS, SCHEDULE_NAMES

from .outputs import SAMPLES_FORMATS

PREVIEW_CHOICES = ("None", *PREVIEW_METHODS)


@dataclass
class Settings:
    save_outputs: bool = True
    preview_method: str = "Approx cheap"
    preview_every: int = 3                 # steps between live previews
    vae: str = "Automatic"                 # "Automatic": the checkpoint's own VAE; else a name in models/VAE
    decode_method: str = "Full"            # A1111's sd_vae_decode_method: "Full" VAE or the tiny "TAESD"
    default_sampler: str = "DPM++ 2M"
    default_schedule: str = "Automatic"
    default_steps: int = 20
    default_cfg: float = 7.0
    default_negative_prompt: str = ""
    clip_skip: int = 1                     # A1111's CLIP_stop_at_last_layers (API requests)
    samples_format: str = "png"            # png, jpg, webp: how pictures are saved
    api_options: dict = field(default_factory=dict)   # other A1111 options clients set, kept as sent
    model_hashes: dict = field(default_factory=dict)  # checkpoint file -> [size, mtime_ns, A1111 short hash]

    def check(self) -> None:
        """Raise ValueError naming the first setting that is out of range."""
        if self.preview_method not in PREVIEW_CHOICES:
            raise ValueError(f"preview method must be one of {', '.join(PREVIEW_CHOICES)}")
        if self.decode_method not in DECODE_METHODS:
            raise ValueError(f"decode with: one of {', '.join(DECODE_METHODS)}")
        if not 1 <= self.preview_every <= 150:
            raise ValueError("preview every N steps: N must be between 1 and 150")
        if self.default_sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.default_sampler!r}")
        if self.default_schedule not in SCHEDULE_NAMES:
            raise ValueError(f"unknown schedule {self.default_schedule!r}")
        if not 1 <= self.default_steps <= 150:
            raise ValueError("default steps must be between 1 and 150")
        if not 1 <= self.clip_skip <= 12:
            raise ValueError("clip skip must be between 1 and 12")
        if not 1 <= self.default_cfg <= 30:
            raise ValueError("default CFG scale must be between 1 and 30")
        if self.samples_format not in SAMPLES_FORMATS:
            raise ValueError(f"samples format must be one of {', '.join(SAMPLES_FORMATS)}")
        if not isinstance(self.api_options, dict) or not isinstance(self.model_hashes, dict):
            raise ValueError("api_options and model_hashes must be mappings")


def load_settings(path: Path) -> Settings:
    """Settings from `path`; unknown keys are ignored and bad values fall back to the defaults."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return Settings()
    known = {f.name for f in fields(Settings)}
    settings = Settings(**{k: v for k, v in data.items() if k in known}) if isinstance(data, dict) else Settings()
    try:
        settings.check()
    except (ValueError, TypeError):
        return Settings()
    return settings


def save_settings(settings: Settings, path: Path) -> None:
    """Write atomically: a crash mid-write leaves the previous file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".json.tmp", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(asdict(settings), f, indent=2)
    os.replace(tmp, path)
