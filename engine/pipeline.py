"""GenerationRequest -> images + infotext: encode the prompt, seeded noise, sample, decode.

txt2img starts from noise at sigma_max. img2img follows A1111's step semantics: with strength s and
N steps it runs the last int(s N) + 1 sigmas of the N-step schedule, starting from the init latent plus
noise at the first of them. Inpainting blends the x_0 estimate with the original latent outside the mask
at every step and pastes the original pixels back at the end.
"""
import dataclasses
import functools
import hashlib
import logging
import random
from pathlib import Path
from typing import Callable

import torch

from . import images
from .control import Control
from .devices import Device
from .errors import EngineError, NumericalError
from .hires import generate_hires
from .img2img import Source, inpaint_conditioning, prepare_source
from .generation_info import embedding_fields, generation_infotext
from .loading import load_components, load_vae
from .loading.catalog import CHECKPOINT_SUFFIXES
from .loading.tiny_vae import find_tiny_decoder, load_tiny_vae
from .loras import PromptLoras
from .models.deep_cache import StepCache
from .preview import fit_latent_rgb
from .prompt_plan import PromptPlan, plan_prompts
from .prompts import PromptEncoder, TextTower
from .refiner import Handover, refiner_fields, usable_refiner
from .request import GenerationRequest, GenerationResult, InvalidRequestError
from .sampling import SAMPLERS, BrownianNoise, Conditioning, Denoiser, DiscreteSchedule, ImageNoise, make_sigmas
from .sampling import resolve_schedule
from .sampling.consistency import ConsistencySchedule, guidance_embedding
from .sampling.schedules import lcm
from .tiling import seamless
from .tokenizer import CLIPTokenizer

log = logging.getLogger(__name__)

Progress = Callable[[int, int, torch.Tensor], None]   # (steps done, steps in the job, current x_0 estimate)
REFINER_SCORE, REFINER_NEGATIVE_SCORE = 6.0, 2.5       # A1111: sdxl_refiner_high_ and _low_aesthetic_score
CFGPP_SCALE = 12.5                                     # A1111's CFG++ maps CFG 0-12.5 onto guidance 0-1


def family_of(config) -> str:
    """The model family a UNet (or a ControlNet's copy of one) belongs to, from its config."""
    if config.is_sdxl:
        return "SDXL"
    context = config.cross_attention_dim
    return {768: "SD1.x", 1024: "SD2.x"}.get(context, f"SD-family (context {context})")


# schedules defined by the noise range alone, besides LCM's place taken by a consistency model's own grid
CONSISTENCY_SCHEDULES = {"LCM", "Karras", "Exponential", "Polyexponential", "KL Optimal", "Beta"}


class Interrupted(Exception):
    """Raised inside sampling when the caller's stop flag is set; the last x_0 estimate is kept."""


class Skipped(Exception):
    """Raised inside sampling when the caller skips the current batch; the job goes on with the next one."""


class Pipeline:
    def __init__(self, unet, vae, text_encoder, tokenizer: CLIPTokenizer, prediction_type: str, device: Device,
                 source: Path, zero_terminal_snr: bool = False, second_text: TextTower | None = None,
                 consistency: dict | None = None):
        """`second_text`: SDXL's OpenCLIP bigG tower beside `text_encoder` (CLIP ViT-L); `consistency`: the
        scheduler config of an EDM-parametrised consistency model (its noise range and training levels)."""
        self.unet, self.vae, self.text_encoder, self.tokenizer = unet, vae, text_encoder, tokenizer
        self.prediction_type, self.device, self.source = prediction_type, device, Path(source)
        self.vae_name: str | None = None
        self._own_vae = vae
        self.schedule = (DiscreteSchedule(zero_terminal_snr=zero_terminal_snr) if consistency is None
                         else ConsistencySchedule.from_config(consistency))
        self.prompts = PromptEncoder(text_encoder, tokenizer, second=second_text, sdxl=unet.config.is_sdxl)
        self.loras = PromptLoras(self._lora_targets())   # set .loras.folder to models/Lora to use <lora:...> tags
        self.tiny_vae_folder: Path | None = None         # models/VAE-approx: where the TAESD decoder is looked for

    # ------------------------------------------------------------------ the model
    def _lora_targets(self) -> dict:
        """The modules a LoRA patches, by PEFT's names: SDXL's bigG is text_encoder_2, the refiner's too."""
        towers = [tower.encoder for tower in self.prompts.towers]
        if not self.unet.config.is_sdxl:
            return {"unet": self.unet, "text_encoder": towers[0]}
        return {"unet": self.unet, **dict(zip(["text_encoder", "text_encoder_2"][-len(towers):], towers))}

    @property
    def name(self) -> str:
        return self.source.stem if self.source.suffix.lower() in CHECKPOINT_SUFFIXES else self.source.name

    @property
    def family(self) -> str:
        if self.unet.config.is_sdxl and self.is_refiner:
            return "SDXL refiner"
        return family_of(self.unet.config)

    @property
    def native_size(self) -> int:
        """Pixel size the model was trained at (512 for SD1.x, the config's sample size otherwise)."""
        return self.unet.config.sample_size * self.vae.config.downscale

    @functools.cached_property
    def model_hash(self) -> str:
        """A1111's model hash: the first 10 hex digits of the checkpoint file's sha256."""
        path = self.source
        if path.is_dir():
            path = next(iter(sorted((path / "unet").glob("diffusion_pytorch_model*"))), None)
            if path is None:
                return ""
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()[:10]

    def summary(self) -> str:
        """One line a person can read: what was loaded, how big, predicting what, on which device."""
        cfg = self.unet.config
        params = sum(p.numel() for p in self.unet.parameters()) / 1e6
        extras = [f"{cfg.in_channels}-channel inpainting"] if cfg.in_channels == 9 else []
        extras += ["guidance embedding"] if cfg.time_cond_proj_dim else []
        return (f"{self.name}: {self.family}, UNet {params:.1f}M parameters, channels "
                f"{'/'.join(map(str, cfg.block_out_channels))}, {self.prediction_type} prediction"
                f"{', ' + ', '.join(extras) if extras else ''}; on {self.device}")

    def set_vae(self, path: str | Path | None) -> None:
        """Use a separate VAE file (models/VAE/), keeping this model's latent scaling; None: the model's own."""
        if path is None:
            self.vae, self.vae_name = self._own_vae, None
        else:
            self.vae = load_vae(path, self._own_vae.scaling_factor, self.device.dtype, self.device.device)
            self.vae_name = Path(path).stem
        self.__dict__.pop("latent_rgb", None)

    @functools.cached_property
    def latent_rgb(self) -> torch.Tensor:
        """The "Approx cheap" preview's latent -> RGB map, fitted to this model's own VAE."""
        return fit_latent_rgb(self.encode_images)

    @functools.cached_property
    def tiny_vae(self):
        """The TAESD decoder for this model's latent space from `tiny_vae_folder`, or None (engine.loading.tiny_vae)."""
        config = self._own_vae.config
        path = (find_tiny_decoder(self.tiny_vae_folder, self.family, config.latent_channels, config.downscale)
                if self.tiny_vae_folder is not None else None)
        return None if path is None else load_tiny_vae(path, self.device.dtype, self.device.device)

    def _require_decoder(self, method: str) -> None:
        if method == "TAESD" and self.tiny_vae is None:
            family = "taesdxl_decoder.pth" if self.unet.config.is_sdxl else "taesd_decoder.pth"
            raise InvalidRequestError(
                f"decode with TAESD: no tiny decoder for {self.name}'s latents in {self.tiny_vae_folder or 'models/VAE-approx'}"
                f" (A1111's {family}, a .safetensors of it, or an AutoencoderTiny folder); pick Full instead")

    # ------------------------------------------------------------------ latents <-> pixels
    @torch.no_grad()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] -> scaled latents (the posterior mean: deterministic)."""
        posterior = self.vae.encode(pixels.to(self.device.device, self.vae.dtype))
        return posterior.mean.float() * self.vae.scaling_factor

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor, method: str = "Full") -> torch.Tensor:
        """Scaled latents -> images in [-1, 1], one at a time to bound memory. A half-precision VAE that
        overflows to NaN is turned to fp32 for good and the picture decoded again, as A1111 does.
        `method` "TAESD": the tiny decoder, which takes the scaled latents as they are."""
        if method == "TAESD":
            self._require_decoder(method)
            tiny = self.tiny_vae
            return torch.cat([tiny.decode(z[None].to(tiny.dtype)).float() for z in latents])
        return torch.cat([self._decode_one(z[None] / self.vae.scaling_factor) for z in latents])

    def _decode_one(self, z: torch.Tensor) -> torch.Tensor:
        pixels = self.vae.decode(z.to(self.vae.dtype)).float()
        if self.vae.dtype == torch.float16 and not torch.isfinite(pixels).all():
            log.warning("the VAE overflowed in fp16; it runs in fp32 from now on")
            self.vae.float()
            return self._decode_one(z)
        return pixels

    # ------------------------------------------------------------------ generation
    def generate(self, req: GenerationRequest, progress: Progress | None = None,
                 should_stop: Callable[[], bool] | None = None,
                 should_skip: Callable[[], bool] | None = None, refiner: "Pipeline | None" = None,
                 hires_model: "Pipeline | None" = None, upscalers: dict | None = None) -> GenerationResult:
        """Run a request. `should_stop` ends the job (its current batch is decoded as it stands);
        `should_skip` ends only the current batch, as A1111's Interrupt and Skip. `refiner`: the model that
        takes over at `req.refiner_switch_at` (engine.refiner). With `req.hires`, the hires fix's second pass
        runs on `hires_model` (default: this one) with the model upscalers `upscalers` (name -> step)."""
        req.validate()
        projection = None
        if req.zero_shot is not None:    # its picture's known part as the img2img start, at the canvas size
            projection = req.zero_shot.projection()
            width, height = req.zero_shot.canvas_size()
            req = dataclasses.replace(req, init_image=projection.start_image(), width=width,
                                      height=height, resize_mode="Just resize",
                                      extra_infotext={**req.extra_infotext, **req.zero_shot.infotext()})
            req.validate()
        refiner = usable_refiner(self, refiner)
        self._require_decoder(req.decode_method)       # before any step is spent
        if req.hires is not None:
            return generate_hires(self, req, progress, should_stop, should_skip, refiner, hires_model, upscalers)
        seed = req.seed if req.seed >= 0 else random.randrange(4294967294)
        subseed = req.subseed if req.subseed >= 0 else random.randrange(4294967294)
        total = req.batch_size * req.batch_count
        seeds = [seed + (i if req.subseed_strength == 0 else 0) for i in range(total)]
        subseeds = [subseed + i for i in range(total)]
        prompt, lora_fields, text_encoder_changed = self.loras.apply(req.prompt)
        if text_encoder_changed:
            self.prompts.clear()
        self._check_control_family(req)
        text = self.encode_prompts(req, prompt)
        refiner_text = None if refiner is None else refiner.encode_prompts(req, prompt)
        lora_fields = {**lora_fields, **embedding_fields(self.prompts, text, req.clip_skip)}
        source = prepare_source(req, self.vae.config.downscale) if req.is_img2img else None
        if projection is not None:
            source.projection = projection

        result = GenerationResult([], seeds, subseeds, [])
        steps_done = [0]
        job_steps = self.steps_run(req) * req.batch_count

        def on_step(denoised):
            steps_done[0] += 1
            if progress is not None:
                progress(min(steps_done[0], job_steps), job_steps, denoised)   # DPM adaptive: calls vary

        for b in range(req.batch_count):
            part = slice(b * req.batch_size, (b + 1) * req.batch_size)
            with seamless([self.unet, self.vae, *([refiner.unet] if refiner else [])], req.tiling):
                latents, interrupted, refined = self._sample(req, seeds[part], subseeds[part], text, source,
                                                             on_step, should_stop, should_skip, refiner, refiner_text)
            fields = {**lora_fields, **(refiner_fields(refiner, req) if refined else {})}
            if latents is not None:
                decoder = self.tiny_vae if req.decode_method == "TAESD" else self.vae
                with seamless([decoder], req.tiling):
                    pixels = self.decode_latents(latents, req.decode_method)
                if source is not None and source.projection is not None:   # the known part exactly kept
                    pixels = source.projection.final(pixels)
                result.latents.extend(latents.float().cpu())
                if not torch.isfinite(latents).all() or not torch.isfinite(pixels).all():
                    raise NumericalError(
                        f"the picture came out as NaN/infinity ({self.device}): the model overflowed at this "
                        "precision or its weights are damaged. Try --precision fp32, another VAE, or another model.")
                for i, image in enumerate(images.to_pil(pixels)):
                    if source is not None:
                        image = images.apply_overlay(image, source.overlay, source.paste_box)
                    index = b * req.batch_size + i
                    infotext = generation_infotext(self, req, seeds[index], subseeds[index], source, fields)
                    image.info["parameters"] = infotext
                    result.images.append(image)
                    result.infotexts.append(infotext)
            if interrupted:
                result.interrupted = True
                break
        return result

    def _check_control_family(self, req: GenerationRequest) -> None:
        """A ControlNet copies its UNet's encoder: it must be of the loaded model's family."""
        for i, unit in enumerate(req.control_units):
            control = unit.model.config.unet
            if (control.is_sdxl, control.cross_attention_dim) != (self.unet.config.is_sdxl,
                                                                  self.unet.config.cross_attention_dim):
                raise EngineError(f"ControlNet {i} is made for {family_of(control)} models; the loaded model "
                                  f"is {self.family}")

    def encode_prompts(self, req: GenerationRequest, prompt: str) -> PromptPlan:
        """The prompt's AND parts and edits, and the negative prompt (none when CFG is off), through this
        model's text towers, scheduled over the run's model calls as A1111 counts them."""
        two_pass_cfg = (req.cfg_scale != 1 or SAMPLERS[req.sampler].cfg_pp) and not self.guidance_embedded
        return plan_prompts(lambda text: self.prompts.encode(text, req.clip_skip), prompt, req.negative_prompt,
                            SAMPLERS[req.sampler].model_calls(req.steps), two_pass_cfg, req.first_pass_steps)

    @property
    def guidance_embedded(self) -> bool:
        """An LCM-distilled UNet takes the guidance scale as an input (w-conditioning) instead of a CFG pass."""
        return bool(self.unet.config.time_cond_proj_dim)

    def job_steps(self, req: GenerationRequest) -> int:
        """Sampler steps the whole request takes, both passes of a hires fix counted (its progress total)."""
        if req.hires is None:
            return self.steps_run(req) * req.batch_count
        w, h = req.hires.final_size(req.width, req.height)
        second = req.hires.second_pass(req, w, h, 0, 0, {"init_latent": torch.zeros(1)})   # img2img, to count
        return (self.steps_run(dataclasses.replace(req, hires=None)) + self.steps_run(second) * req.batch_size) \
            * req.batch_count

    def steps_run(self, req: GenerationRequest) -> int:
        """Sampler steps one picture of `req` takes (img2img: A1111's part of the schedule)."""
        if not req.is_img2img or self._lcm_strength_grid(req) or self.own_grid(req):
            return req.steps
        return int(min(req.denoising_strength, 0.999) * req.steps) + 1

    @property
    def consistency_trained(self) -> bool:
        """An EDM-parametrised consistency model: it samples on its own noise levels, not on SD's 1,000 steps."""
        return isinstance(self.schedule, ConsistencySchedule)

    def sigmas_for(self, req: GenerationRequest) -> torch.Tensor:
        """The request's noise levels on this model. A consistency model takes its own grid with schedule
        Automatic or LCM (whatever the sampler), or a schedule defined by the noise range alone; the others
        need SD's discrete timesteps and are refused."""
        if not self.consistency_trained:
            return make_sigmas(req.sampler, req.schedule, req.steps, self.schedule,
                               "sdxl" if self.unet.config.is_sdxl else "sd")
        name = resolve_schedule(req.sampler, req.schedule)
        if SAMPLERS[req.sampler].needs_schedule or (name not in CONSISTENCY_SCHEDULES and not self.own_grid(req)):
            what = f"sampler {req.sampler!r}" if SAMPLERS[req.sampler].needs_schedule else f"schedule {name!r}"
            raise InvalidRequestError(f"{self.name} is a consistency model with its own noise levels: the {what} "
                                      f"needs SD's 1,000 timesteps. Use sampler Consistency with schedule Automatic "
                                      f"(its own levels), or one of: {', '.join(sorted(CONSISTENCY_SCHEDULES - {'LCM'}))}")
        if self.own_grid(req):
            return self.schedule.grid(req.steps, req.denoising_strength if req.is_img2img else 1.0)
        return make_sigmas(req.sampler, req.schedule, req.steps, self.schedule)

    def own_grid(self, req: GenerationRequest) -> bool:
        """A consistency model sampled on its own training levels (schedule Automatic or LCM)."""
        return self.consistency_trained and (req.schedule == "Automatic"
                                             or resolve_schedule(req.sampler, req.schedule) == "LCM")

    @staticmethod
    def _lcm_strength_grid(req: GenerationRequest) -> bool:
        """img2img on the LCM schedule takes `steps` timesteps from the strength's part of the grid, as
        diffusers' LCM pipelines do, so one to four steps work at any strength."""
        return req.is_img2img and resolve_schedule(req.sampler, req.schedule) == "LCM"

    @torch.no_grad()
    def _sample(self, req, seeds, subseeds, text, source: Source | None, on_step, should_stop, should_skip,
                refiner=None, refiner_text=None):
        """One batch: (final scaled latents or None, interrupted?, handed over to the refiner?)."""
        device = self.device.device
        spec = SAMPLERS[req.sampler]
        down = self.vae.config.downscale
        latent_shape = (self.unet.config.out_channels, req.height // down, req.width // down)
        noise = ImageNoise(latent_shape, seeds, subseeds, req.subseed_strength, device, req.eta_noise_seed_delta)
        x = noise.initial()
        sigmas = self.sigmas_for(req).to(device)
        unit_start = spec.unit_start and not self.consistency_trained   # its x = x_0 + sigma z, not DDPM-scaled
        n = len(seeds)
        concat, init, keep = None, None, None
        projection = source.projection if source is not None else None

        if source is None:
            x = x * ((1 + sigmas[0] ** 2) ** 0.5 if unit_start else sigmas[0])
            if self.unet.config.in_channels == 9:   # inpainting UNet with nothing to keep: all-masked grey image
                concat = inpaint_conditioning(self.encode_images, torch.zeros(1, 3, req.height, req.width), None)
        else:
            init = (source.latent.to(device) if source.latent is not None
                    else self.encode_images(source.image)).expand(n, -1, -1, -1)
            if source.latent_mask is not None:
                repaint = source.latent_mask.to(device)
                keep = 1.0 - repaint
                if req.masked_content == "latent noise":
                    init = init * keep + ImageNoise(latent_shape, seeds, device=device).initial() * repaint
                elif req.masked_content == "latent nothing":
                    init = init * keep
            if self.unet.config.in_channels == 9:   # a latent to start from: all-masked, as A1111's latent hires fix
                picture = source.image if source.image is not None else torch.zeros(1, 3, req.height, req.width)
                concat = inpaint_conditioning(self.encode_images, picture, source.pixel_mask)
            if self._lcm_strength_grid(req) and not self.own_grid(req):   # a consistency model's own grid has it
                sigmas = lcm(req.steps, self.schedule, req.denoising_strength).to(device)
            elif not self.own_grid(req):
                t_enc = int(min(req.denoising_strength, 0.999) * req.steps)
                sigmas = sigmas[req.steps - t_enc - 1:]
            x = init + x * sigmas[0]
        if concat is not None:
            concat = concat.expand(n, -1, -1, -1).to(device)

        control = Control(req.control_units, req.width, req.height, sigmas, device) if req.control_units else None
        conditioning = self._conditioning(req, text, concat, control, n)
        denoiser = Denoiser(self.unet, self.schedule, self.prediction_type, spec.boundary,
                            StepCache(req.deep_cache) if req.deep_cache else None)
        handover = None
        if refiner is not None:
            handover = Handover(Denoiser(refiner.unet, refiner.schedule, refiner.prediction_type, spec.boundary),
                                refiner._conditioning(req, refiner_text, None, None, n), req.refiner_switch_at,
                                self.schedule)
        last, calls = {}, [0]
        cfg = 1.0 if self.guidance_embedded else req.cfg_scale   # a guidance embedding carries the scale itself
        if spec.cfg_pp:
            cfg /= CFGPP_SCALE

        def model(x, sigma):
            if should_stop is not None and should_stop():
                raise Interrupted
            if should_skip is not None and should_skip():
                raise Skipped
            call, calls[0] = calls[0], calls[0] + 1        # prompt edits switch at A1111's call count
            if handover is not None and handover.due(sigma):
                c = handover.conditioning if refiner_text.fixed else refiner._conditioning(
                    req, refiner_text, None, None, n, call)
                denoised = handover.denoiser(x, sigma, c, cfg, spec.cfg_pp)
            else:
                c = conditioning if text.fixed else self._conditioning(req, text, concat, control, n, call)
                denoised = denoiser(x, sigma, c, cfg, spec.cfg_pp)
            if keep is not None:     # inpainting: outside the mask the original, for each estimate
                blend = lambda d: init * keep + d * (1 - keep)   # noqa: E731
                denoised = tuple(map(blend, denoised)) if spec.cfg_pp else blend(denoised)
            if projection is not None:   # zero-shot editing: each estimate put back on the constraint, in pixels
                project = lambda d: self.encode_images(projection(self.decode_latents(d))).to(d)   # noqa: E731
                denoised = tuple(map(project, denoised)) if spec.cfg_pp else project(denoised)
            return denoised

        def callback(i, x, denoised):
            last["denoised"] = denoised
            on_step(denoised)

        options = {**spec.defaults, **({"eta": req.eta} if req.eta is not None else {}), "s_noise": req.s_noise,
                   "sigma_min": self.schedule.sigma_min}
        options = {k: v for k, v in options.items() if k in spec.options}
        if spec.needs_schedule:
            options["schedule"] = self.schedule
        noise_sampler = noise if spec.noise == "ancestral" else None
        if spec.noise == "brownian":
            noise_sampler = BrownianNoise(x, sigmas[sigmas > 0].min(), sigmas.max(), seeds)
        refined = lambda: handover is not None and handover.switched   # noqa: E731
        try:
            x = spec.function(model, x, sigmas, noise=noise_sampler, callback=callback, **options)
        except Interrupted:
            return last.get("denoised"), True, refined()
        except Skipped:
            return last.get("denoised"), False, refined()
        if unit_start:   # DDIM stops at alpha_bar_0 and gives its DDPM form back, as CompVis and diffusers do
            x = x / (1 + sigmas[-1] ** 2) ** 0.5
        if keep is not None:
            x = init * keep + x * (1 - keep)
        return x, False, refined()

    def _conditioning(self, req: GenerationRequest, plan: PromptPlan, concat, control, n: int,
                      call: int = 0) -> Conditioning:
        """This model's UNet inputs beside the latent, for a batch of n at model call `call`: the prompt's and
        negative prompt's embeddings, inpainting concat, LCM's guidance embedding, ControlNet, SDXL's
        micro-conditioning."""
        device = self.device.device
        w_embedding = None
        if self.guidance_embedded:
            w_embedding = guidance_embedding(torch.full((n,), req.cfg_scale - 1.0),
                                             self.unet.config.time_cond_proj_dim).to(device)
        parts, negative = plan.at(call)
        (cond, pooled), (uncond, uncond_pooled) = parts[0][0], negative or (None, None)
        rows = lambda t: t.expand(n, -1, -1).to(device, self.unet.dtype)   # noqa: E731
        conditioning = Conditioning(rows(cond), None if uncond is None else rows(uncond), concat, w_embedding, control)
        if self.unet.config.is_sdxl:
            self._micro_conditioning(conditioning, req, pooled, uncond_pooled, n)
        if plan.composed:
            conditioning.parts = [(rows(context), None if part_pooled is None else part_pooled.expand(n, -1).to(device),
                                   weight) for (context, part_pooled), weight in parts]
        return conditioning

    @property
    def is_refiner(self) -> bool:
        """SDXL's refiner: five micro-conditioning ids (size, crop, aesthetic score), bigG alone."""
        cfg = self.unet.config
        pooled = self.prompts.towers[-1].encoder.config.projection_dim or 0
        return cfg.is_sdxl and (cfg.projection_class_embeddings_input_dim - pooled) // cfg.addition_time_embed_dim == 5

    def _micro_conditioning(self, c: Conditioning, req: GenerationRequest, pooled, uncond_pooled, n: int) -> None:
        """SDXL's extra UNet inputs as A1111 sends them: original size = target size = the picture's, crop (0, 0);
        the refiner's aesthetic score 6 for the prompt and 2.5 for the negative prompt (A1111's defaults)."""
        device = self.device.device
        h, w = req.height, req.width
        def ids(score):
            row = [h, w, 0, 0, score] if self.is_refiner else [h, w, 0, 0, h, w]
            return torch.tensor([row], dtype=torch.float32).expand(n, -1).to(device)
        c.pooled, c.time_ids = pooled.expand(n, -1).to(device), ids(REFINER_SCORE)
        if uncond_pooled is not None:
            c.uncond_pooled, c.uncond_time_ids = uncond_pooled.expand(n, -1).to(device), ids(REFINER_NEGATIVE_SCORE)


def load_pipeline(path: str | Path, device: Device | None = None, vae: str | Path | None = None,
                  prediction_type: str | None = None) -> Pipeline:
    """Load a checkpoint file or diffusers folder. `device` defaults to Device.choose() (auto)."""
    device = device or Device.choose()
    parts = load_components(path, device.dtype, device.device, prediction_type)
    second = None if parts.text_encoder_2 is None else TextTower(parts.text_encoder_2,
                                                                 CLIPTokenizer(pad_id=parts.pad_token_id_2))
    pipe = Pipeline(parts.unet, parts.vae, parts.text_encoder, CLIPTokenizer(pad_id=parts.pad_token_id),
                    parts.prediction_type, device, Path(path), parts.zero_terminal_snr, second, parts.consistency)
    pipe.set_vae(vae)
    return pipe
