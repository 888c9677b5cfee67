"""What a generation asks for, and what it gives back. Plain data; the pipeline does the work."""
from dataclasses import dataclass, field

import torch
from PIL import Image

from .control import ControlUnit
from .errors import EngineError
from .hires import HiresFix
from .images import MASKED_CONTENT, RESIZE_MODES
from .refiner import DEFAULT_SWITCH_AT
from .sampling import SAMPLERS, SCHEDULE_NAMES
from .zero_shot import ZeroShotEdit

INPAINT_AREAS = ("Whole picture", "Only masked")
MAX_PROMPT_CHARACTERS = 10_000          # about 30 chunks of 77 tokens
MAX_IMAGE_SIDE = 4096                   # pictures given to img2img, inpaint and ControlNet
MAX_MASKED_PADDING = 256                # A1111's "Only masked padding" slider
DECODE_METHODS = ("Full", "TAESD")      # A1111's sd_vae_decode_method: the full VAE or the tiny one


class InvalidRequestError(EngineError, ValueError):
    """A parameter a user chose is out of range; the message says which and what is allowed."""


@dataclass
class GenerationRequest:
    prompt: str = ""
    negative_prompt: str = ""
    sampler: str = "DPM++ 2M"
    schedule: str = "Automatic"
    steps: int = 20
    cfg_scale: float = 7.0
    width: int = 512
    height: int = 512
    seed: int = -1                      # -1: random
    subseed: int = -1                   # variation seed
    subseed_strength: float = 0.0
    batch_size: int = 1
    batch_count: int = 1
    clip_skip: int = 1
    tiling: bool = False                # seamless: the picture wraps around at its edges (engine.tiling)
    eta: float | None = None            # None: the sampler's default (1 for ancestral/SDE, 0 for DDIM)
    s_noise: float = 1.0
    eta_noise_seed_delta: int = 0       # A1111's ENSD: ancestral noise from seed + this (engine.sampling.noise)
    decode_method: str = "Full"         # "TAESD": the final pictures from the tiny decoder in models/VAE-approx
    deep_cache: int = 0                 # DeepCache: the whole UNet every N-th evaluation, the deep features reused
                                        # between (engine.models.deep_cache); 0 = off
    # img2img / inpaint
    init_image: Image.Image | None = None
    init_latent: torch.Tensor | None = None     # (1, C, H/8, W/8) scaled latent to start from instead (latent upscale)
    denoising_strength: float = 0.75
    resize_mode: str = "Just resize"
    mask: Image.Image | None = None     # white = repaint
    mask_blur: int = 4
    invert_mask: bool = False
    masked_content: str = "original"    # fill | original | latent noise | latent nothing
    inpaint_area: str = "Whole picture"
    masked_padding: int = 32
    control_units: list[ControlUnit] = field(default_factory=list)    # ControlNet, summed
    refiner_switch_at: float = DEFAULT_SWITCH_AT   # fraction of the run after which a refiner, when one is given, takes over
    hires: HiresFix | None = None       # txt2img's hires fix: a second, img2img pass at a larger size
    zero_shot: ZeroShotEdit | None = None   # colorize / super-resolve / outpaint its picture (engine.zero_shot)
    first_pass_steps: int | None = None  # set on a hires fix's second pass: prompt edits count on from there
    extra_infotext: dict = field(default_factory=dict)

    @property
    def is_img2img(self) -> bool:
        return self.init_image is not None or self.init_latent is not None

    def validate(self) -> None:
        def require(ok: bool, message: str):
            if not ok:
                raise InvalidRequestError(message)

        require(self.sampler in SAMPLERS, f"unknown sampler {self.sampler!r}; choose one of: {', '.join(SAMPLERS)}")
        require(self.schedule in SCHEDULE_NAMES,
                f"unknown schedule {self.schedule!r}; choose one of: {', '.join(SCHEDULE_NAMES)}")
        require(1 <= self.steps <= 150, f"steps must be between 1 and 150, not {self.steps}")
        for name in ("prompt", "negative_prompt"):
            length = len(getattr(self, name))
            require(length <= MAX_PROMPT_CHARACTERS, f"the {name.replace('_', ' ')} is {length:,} characters long; "
                                                     f"at most {MAX_PROMPT_CHARACTERS:,} are taken")
        pictures = [("init image", self.init_image), ("mask", self.mask),
                    *((f"ControlNet {i} image", u.image) for i, u in enumerate(self.control_units))]
        for name, picture in pictures:
            if picture is not None:
                require(max(picture.size) <= MAX_IMAGE_SIDE, f"the {name} is {picture.size[0]}x{picture.size[1]}; "
                                                            f"at most {MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE} is taken")
        lcm_grid = self.schedule == "LCM" or (self.schedule == "Automatic"
                                              and SAMPLERS[self.sampler].default_schedule == "LCM")
        if lcm_grid:
            grid = int(50 * (self.denoising_strength if self.is_img2img else 1.0))
            require(1 <= self.steps <= grid, f"the LCM schedule takes 1 to {grid} steps"
                    + (f" at denoising strength {self.denoising_strength:g}" if self.is_img2img else "")
                    + f", not {self.steps}")
        if self.zero_shot is not None:
            require(self.mask is None and self.init_latent is None and self.hires is None,
                    "a zero-shot edit starts from its own picture: no mask, init latent or hires fix with it")
            self.zero_shot.validate(require)
            require(max(self.zero_shot.picture.size) <= MAX_IMAGE_SIDE, "the zero-shot picture is "
                    f"{self.zero_shot.picture.size[0]}x{self.zero_shot.picture.size[1]}; at most "
                    f"{MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE} is taken")
        for name in ("width", "height"):
            value = getattr(self, name)
            require(64 <= value <= 2048 and value % 8 == 0, f"{name} must be a multiple of 8 from 64 to 2048, not {value}")
        require(0 <= self.cfg_scale <= 30, f"CFG scale must be between 0 and 30, not {self.cfg_scale}")
        require(1 <= self.batch_size <= 8, f"batch size must be between 1 and 8, not {self.batch_size}")
        require(1 <= self.batch_count <= 100, f"batch count must be between 1 and 100, not {self.batch_count}")
        require(1 <= self.clip_skip <= 12, f"clip skip must be between 1 and 12, not {self.clip_skip}")
        require(0 <= self.subseed_strength <= 1, "variation strength must be between 0 and 1")
        require(0 <= self.denoising_strength <= 1, "denoising strength must be between 0 and 1")
        require(self.decode_method in DECODE_METHODS,
                f"decode method must be one of: {', '.join(DECODE_METHODS)}, not {self.decode_method!r}")
        require(self.deep_cache == 0 or 2 <= self.deep_cache <= 10,
                f"step caching (DeepCache) refreshes every 2 to 10 evaluations, or 0 for off; not {self.deep_cache}")
        require(self.resize_mode in RESIZE_MODES, f"resize mode must be one of: {', '.join(RESIZE_MODES)}")
        require(self.masked_content in MASKED_CONTENT, f"masked content must be one of: {', '.join(MASKED_CONTENT)}")
        require(self.inpaint_area in INPAINT_AREAS, f"inpaint area must be one of: {', '.join(INPAINT_AREAS)}")
        require(0 <= self.mask_blur <= 64, "mask blur must be between 0 and 64")
        require(0 <= self.masked_padding <= MAX_MASKED_PADDING,
                f"only-masked padding must be between 0 and {MAX_MASKED_PADDING} pixels, not {self.masked_padding}")
        require(self.eta is None or 0 <= self.eta <= 1, f"eta must be between 0 and 1, not {self.eta}")
        require(0 <= self.s_noise <= 1.1, f"sigma noise (s_noise) must be between 0 and 1.1, not {self.s_noise}")
        require(0 <= self.eta_noise_seed_delta < 2 ** 32,
                f"eta noise seed delta must be from 0 to 2^32 - 1, not {self.eta_noise_seed_delta}")
        require(0 <= self.refiner_switch_at <= 1,
                f"the refiner's switch point must be a fraction from 0 to 1, not {self.refiner_switch_at}")
        require(self.mask is None or self.init_image is not None, "a mask needs an init image to inpaint")
        for unit in self.control_units:
            unit.validate(require)
        if self.hires is not None:
            require(not self.is_img2img, "hires fix is a txt2img feature; img2img takes the larger size directly")
            self.hires.validate(require, self.width, self.height)


@dataclass
class GenerationResult:
    images: list[Image.Image]
    seeds: list[int]
    subseeds: list[int]
    infotexts: list[str]
    interrupted: bool = False
    latents: list[torch.Tensor] = field(default_factory=list)   # each picture's final scaled latent, on the CPU
    grids: int = 0                      # how many of `images` lead as grids composed of the others (X/Y/Z)
