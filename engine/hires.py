"""Hires. fix, as A1111's txt2img does it: a first pass at the asked size, an upscale, then img2img at the
larger size, so a model trained at 512 can make a 1024 picture without repeating its subject.

The target: `scale` times the first pass's size, or `resize_x` x `resize_y` (one of them 0: the other follows
the aspect ratio; both given: the first pass is scaled to cover them and the latent's overhang cut evenly from
both sides, as A1111's truncate_x / truncate_y). Latent upscalers interpolate the first pass's latent; pixel
upscalers decode it, upscale the picture and encode it again. The second pass runs `steps` (0: the first
pass's) at `denoising_strength` with each picture's own seed, optionally with its own sampler, schedule,
prompts and checkpoint; ControlNet maps are fitted to the larger size as for any request. A refiner takes
over in the second pass only (A1111's default, "second pass").
"""
import dataclasses
from dataclasses import dataclass

import torch

from .upscalers import LATENT_UPSCALE_MODES, PIXEL_UPSCALERS, UnknownUpscalerError, resize_with, upscale_latent

LATENT_FACTOR = 8           # A1111's opt_f: the size arithmetic's grid (a VAE with another factor divides it)
MAX_SIDE = 2048


@dataclass
class HiresFix:
    upscaler: str = "Latent"
    scale: float = 2.0
    resize_x: int = 0           # 0 and 0: use `scale`
    resize_y: int = 0
    steps: int = 0              # 0: as many as the first pass
    denoising_strength: float = 0.7
    sampler: str | None = None  # None: the first pass's
    schedule: str | None = None
    prompt: str = ""            # "": the first pass's
    negative_prompt: str = ""
    checkpoint: str | None = None   # the second pass's model, by name (the caller opens it)

    def upscale_to(self, width: int, height: int) -> tuple[int, int, int, int]:
        """(upscale-to width, height, latent columns and rows to cut), as A1111's calculate_target_resolution."""
        if not self.resize_x and not self.resize_y:
            return int(width * self.scale), int(height * self.scale), 0, 0
        if not self.resize_y:
            return self.resize_x, self.resize_x * height // width, 0, 0
        if not self.resize_x:
            return self.resize_y * width // height, self.resize_y, 0, 0
        if width / height < self.resize_x / self.resize_y:
            to_w, to_h = self.resize_x, self.resize_x * height // width
        else:
            to_w, to_h = self.resize_y * width // height, self.resize_y
        return to_w, to_h, (to_w - self.resize_x) // LATENT_FACTOR, (to_h - self.resize_y) // LATENT_FACTOR

    def final_size(self, width: int, height: int) -> tuple[int, int]:
        """The second pass's size: the upscale-to size on the latent grid, less the cut."""
        to_w, to_h, cut_x, cut_y = self.upscale_to(width, height)
        return (to_w // LATENT_FACTOR - cut_x) * LATENT_FACTOR, (to_h // LATENT_FACTOR - cut_y) * LATENT_FACTOR

    def validate(self, require, width: int, height: int) -> None:
        from .sampling import SAMPLERS, SCHEDULE_NAMES
        require(0 < self.scale <= 8, f"hires upscale must be above 0 and at most 8, not {self.scale}")
        for name, value in (("width", self.resize_x), ("height", self.resize_y)):
            require(value == 0 or 64 <= value <= MAX_SIDE,
                    f"hires resize {name} must be 0 (follow the scale) or from 64 to {MAX_SIDE}, not {value}")
        w, h = self.final_size(width, height)
        require(64 <= w <= MAX_SIDE and 64 <= h <= MAX_SIDE,
                f"hires fix would make {w}x{h}; each side must be from 64 to {MAX_SIDE}")
        require(0 <= self.steps <= 150, f"hires steps must be from 0 (as the first pass) to 150, not {self.steps}")
        require(0 <= self.denoising_strength <= 1,
                f"hires denoising strength must be between 0 and 1, not {self.denoising_strength}")
        require(self.sampler is None or self.sampler in SAMPLERS,
                f"unknown hires sampler {self.sampler!r}; choose one of: {', '.join(SAMPLERS)}")
        require(self.schedule is None or self.schedule in SCHEDULE_NAMES,
                f"unknown hires schedule {self.schedule!r}; choose one of: {', '.join(SCHEDULE_NAMES)}")

    def infotext(self, req) -> dict:
        """A1111's infotext fields of a hires run (its extra_generation_params, in its order)."""
        fields = {
            "Denoising strength": self.denoising_strength,
            "Hires checkpoint": self.checkpoint or None,
            "Hires sampler": self.sampler if self.sampler not in (None, req.sampler) else None,
            "Hires schedule type": self.schedule if self.schedule not in (None, req.schedule) else None,
            "Hires prompt": self.prompt if self.prompt and self.prompt != req.prompt else None,
            "Hires negative prompt": (self.negative_prompt if self.negative_prompt
                                      and self.negative_prompt != req.negative_prompt else None),
        }
        if self.resize_x or self.resize_y:
            fields["Hires resize"] = f"{self.resize_x}x{self.resize_y}"
        else:
            fields["Hires upscale"] = self.scale
        fields.update({"Hires steps": self.steps or None, "Hires upscaler": self.upscaler})
        return fields

    def second_pass(self, req, width: int, height: int, seed: int, subseed: int, start: dict):
        """The img2img request of one picture's second pass; `start` is its init_image or init_latent."""
        return dataclasses.replace(
            req, hires=None, prompt=self.prompt or req.prompt, negative_prompt=self.negative_prompt or req.negative_prompt,
            sampler=self.sampler or req.sampler, schedule=self.schedule or req.schedule, steps=self.steps or req.steps,
            width=width, height=height, seed=seed, subseed=subseed, batch_size=1, batch_count=1,
            first_pass_steps=req.steps,
            denoising_strength=self.denoising_strength, resize_mode="Just resize", mask=None, extra_infotext={},
            init_image=start.get("init_image"), init_latent=start.get("init_latent"))


def check_upscaler(name: str, upscalers: dict | None) -> None:
    if name not in LATENT_UPSCALE_MODES and name not in PIXEL_UPSCALERS and name not in (upscalers or {}):
        raise UnknownUpscalerError(f"no upscaler named {name!r}; choose one of: "
                                   f"{', '.join([*LATENT_UPSCALE_MODES, *PIXEL_UPSCALERS, *(upscalers or {})])}")


def generate_hires(pipe, req, progress=None, should_stop=None, should_skip=None, refiner=None, second=None,
                   upscalers: dict | None = None):
    """Both passes of `req` (whose `hires` is set) on `pipe`; the second on `second` when given. Each picture
    keeps the first pass's infotext plus the hires fields, as A1111 writes it. Interrupted during the first
    pass, the first pass's pictures come back."""
    hr = req.hires
    check_upscaler(hr.upscaler, upscalers)
    second = second or pipe
    to_w, to_h, cut_x, cut_y = hr.upscale_to(req.width, req.height)
    width, height = hr.final_size(req.width, req.height)
    fields = {**hr.infotext(req), **req.extra_infotext}
    first_req = dataclasses.replace(req, hires=None, extra_infotext=fields)
    probe = hr.second_pass(req, width, height, 0, 0, {"init_latent": torch.zeros(1)})   # img2img, to count steps
    first_steps, total = pipe.steps_run(first_req) * req.batch_count, pipe.job_steps(req)
    offset = [0]

    def shifted(done, _, denoised):
        if progress is not None:
            progress(offset[0] + done, total, denoised)

    first = pipe.generate(first_req, shifted, should_stop, should_skip)
    if first.interrupted:
        return first
    offset[0] = first_steps
    result = dataclasses.replace(first, images=[], latents=[])
    for image, latent, seed, subseed, infotext in zip(first.images, first.latents, first.seeds, first.subseeds,
                                                      first.infotexts):
        grid_w, grid_h = to_w // LATENT_FACTOR * LATENT_FACTOR, to_h // LATENT_FACTOR * LATENT_FACTOR
        left, top = cut_x // 2 * LATENT_FACTOR, cut_y // 2 * LATENT_FACTOR
        if hr.upscaler in LATENT_UPSCALE_MODES:
            down = pipe.vae.config.downscale
            z = upscale_latent(latent[None], grid_w, grid_h, hr.upscaler, down)
            start = {"init_latent": z[..., top // down: (top + height) // down, left // down: (left + width) // down]}
        else:
            big = resize_with(image, grid_w, grid_h, hr.upscaler, upscalers)
            start = {"init_image": big.crop((left, top, left + width, top + height))}
        done = second.generate(hr.second_pass(req, width, height, seed, subseed, start), shifted, should_stop,
                               should_skip, refiner)
        offset[0] += second.steps_run(probe)
        for picture in done.images:
            picture.info["parameters"] = infotext
            result.images.append(picture)
        result.latents.extend(done.latents)
        if done.interrupted:
            result.interrupted = True
            break
    result.infotexts = [image.info["parameters"] for image in result.images]
    return result
