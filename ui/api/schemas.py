"""Request bodies of AUTOMATIC1111's API: the same field names and defaults, so existing clients send what
they always send. Fields this app has no use for yet (restore_faces, s_churn, ...)
are accepted, and named in the answer's `info["warnings"]` when they ask for something (see unused.py)."""
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

Int = Annotated[int, Field(ge=-(2 ** 63), le=2 ** 63 - 1)]      # what a tensor (and JSON tooling) can hold


class GenerationPayload(BaseModel):
    model_config = ConfigDict(extra="allow")

    prompt: str = ""
    negative_prompt: str = ""
    styles: list[str] | None = None
    seed: Int = -1
    subseed: Int = -1
    subseed_strength: float = 0.0
    seed_resize_from_h: Int = -1
    seed_resize_from_w: Int = -1
    sampler_name: str | None = None
    sampler_index: str = "Euler"
    scheduler: str | None = None
    batch_size: Int = 1
    n_iter: Int = 1
    steps: Int = 50
    cfg_scale: float = 7.0
    width: Int | None = None            # None: the loaded model's native size (512 for SD1.x)
    height: Int | None = None
    restore_faces: bool | None = None
    tiling: bool | None = None
    do_not_save_samples: bool = False
    do_not_save_grid: bool = False
    eta: float | None = None
    s_noise: float = 1.0
    override_settings: dict[str, Any] | None = None
    override_settings_restore_afterwards: bool = True
    script_name: str | None = None
    script_args: list = Field(default_factory=list)
    send_images: bool = True
    save_images: bool = False
    alwayson_scripts: dict[str, Any] = Field(default_factory=dict)
    refiner_checkpoint: str | None = None
    refiner_switch_at: float | None = None      # None: 0.8, the page's default


class Txt2ImgPayload(GenerationPayload):
    enable_hr: bool = False
    denoising_strength: float | None = None     # None: 0.7 for the hires pass, the page's default
    hr_scale: float = 2.0
    hr_upscaler: str | None = None              # None: "Latent"
    hr_second_pass_steps: Int = 0
    hr_resize_x: Int = 0
    hr_resize_y: Int = 0
    hr_checkpoint_name: str | None = None
    hr_sampler_name: str | None = None
    hr_scheduler: str | None = None
    hr_prompt: str = ""
    hr_negative_prompt: str = ""
    firstphase_width: Int = 0
    firstphase_height: Int = 0


class Img2ImgPayload(GenerationPayload):
    init_images: list[str] = Field(default_factory=list, max_length=8)
    resize_mode: Int = 0
    denoising_strength: float = 0.75
    image_cfg_scale: float | None = None
    mask: str | None = None
    mask_blur_x: Int = 4
    mask_blur_y: Int = 4
    mask_blur: Int | None = None
    inpainting_fill: Int = 0
    inpaint_full_res: bool = True
    inpaint_full_res_padding: Int = 0
    inpainting_mask_invert: Int = 0
    initial_noise_multiplier: float | None = None
    include_init_images: bool = False


class PngInfoPayload(BaseModel):
    image: str = ""


class GenerationResponse(BaseModel):
    images: list[str] | None
    parameters: dict
    info: str
