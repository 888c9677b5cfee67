"""The denoiser D(x, sigma) -> x_0 that samplers call: the only place that knows the prediction type.

Karras et al. 2022 (Sec. 5, Table 1) write every model as D(x; sigma) = c_skip x + c_out F(c_in x; t(sigma)).
For a discrete eps-prediction model: c_in = 1/sqrt(sigma^2 + 1), c_out = -sigma, c_skip = 1.
For v-prediction (Salimans & Ho 2022): c_skip = 1/(sigma^2 + 1), c_out = -sigma/sqrt(sigma^2 + 1).
Classifier-free guidance (Ho & Salimans 2022): D = D_uncond + w (D_cond - D_uncond), cond and uncond in
one batch; w = 1 skips the unconditional pass.
With boundary="lcm" the guided x_0 estimate becomes a latent consistency function (consistency.py):
f(x, t) = c_skip(t) x_t + c_out(t) D(x, sigma), x_t = x / sqrt(sigma^2 + 1) the DDPM-scaled sample.
A consistency model in the EDM parametrisation (prediction type "consistency", with a ConsistencySchedule)
is a consistency function already: its scalings are the schedule's, and no LCM boundary is added on top.
"""
from dataclasses import dataclass
from typing import Callable

import torch

from ..models.deep_cache import StepCache
from .consistency import ConsistencySchedule, lcm_boundary
from .schedules import DiscreteSchedule


@dataclass
class Conditioning:
    """Text embeddings of one batch, plus extra UNet inputs that ride along with every call."""
    cond: torch.Tensor                       # (B, tokens, dim)
    uncond: torch.Tensor | None = None       # (B, tokens', dim); None when CFG is off
    concat: torch.Tensor | None = None       # inpainting UNets: (B, 5, h, w) mask + masked-image latents
    timestep_cond: torch.Tensor | None = None
    control: Callable | None = None          # engine.control.Control: ControlNet residuals for each call
    # SDXL's micro-conditioning, for the prompt's rows and the negative prompt's: pooled text (B, 1280) and
    # size / crop / target (or aesthetic score) ids (B, 6 or 5)
    pooled: torch.Tensor | None = None
    time_ids: torch.Tensor | None = None
    uncond_pooled: torch.Tensor | None = None
    uncond_time_ids: torch.Tensor | None = None
    # a prompt of AND parts (composable diffusion): [(context, pooled or None, weight), ...]; `cond` is the first
    parts: list | None = None

    def added(self, cond: bool) -> dict:
        """The UNet's extra inputs for the prompt's rows (cond) or the negative prompt's."""
        if self.pooled is None:
            return {}
        if cond:
            return {"text_embeds": self.pooled, "time_ids": self.time_ids}
        return {"text_embeds": self.uncond_pooled, "time_ids": self.uncond_time_ids}


class Denoiser:
    """Wraps an eps- or v-predicting UNet as D(x, sigma) with classifier-free guidance."""

    def __init__(self, unet: Callable, schedule: DiscreteSchedule | ConsistencySchedule,
                 prediction_type: str = "epsilon", boundary: str | None = None, step_cache: StepCache | None = None):
        """`step_cache`: DeepCache's state for this run (engine.models.deep_cache), handed to each UNet pass."""
        if prediction_type not in ("epsilon", "v_prediction", "consistency"):
            raise ValueError(f"unknown prediction type {prediction_type!r}")
        if (prediction_type == "consistency") != isinstance(schedule, ConsistencySchedule):
            raise ValueError("a consistency model needs its ConsistencySchedule, and only it takes one")
        if boundary not in (None, "lcm"):
            raise ValueError(f"unknown boundary condition {boundary!r}")
        self.unet = unet
        self.schedule = schedule
        self.prediction_type = prediction_type
        self.boundary = boundary
        self.step_cache = step_cache

    def scalings(self, sigma: torch.Tensor):
        """(c_skip, c_out, c_in) broadcastable over (B, C, H, W)."""
        sigma = sigma[:, None, None, None]
        if self.prediction_type == "consistency":
            return self.schedule.scalings(sigma)
        c_in = 1 / (sigma ** 2 + 1) ** 0.5
        if self.prediction_type == "v_prediction":
            return 1 / (sigma ** 2 + 1), -sigma * c_in, c_in
        return torch.ones_like(sigma), -sigma, c_in

    def model_output(self, x: torch.Tensor, sigma: torch.Tensor, context: torch.Tensor, c: Conditioning,
                     is_cond: torch.Tensor, added: dict | None = None) -> torch.Tensor:
        """One UNet evaluation; `is_cond` (B,) marks the rows of the prompt (1) and the negative prompt (0);
        `added`: the UNet's extra inputs for those rows (SDXL's text_embeds and time_ids)."""
        c_skip, c_out, c_in = self.scalings(sigma)
        dtype = getattr(self.unet, "dtype", x.dtype)
        latent_in = (x * c_in).to(dtype)
        t = self.schedule.sigma_to_t(sigma)
        residuals = {}
        if c.control is not None:
            found = c.control(latent_in, sigma, t, context.to(dtype), is_cond, added or {})
            if found is not None:
                residuals = {"down_block_additional_residuals": found[0], "mid_block_additional_residual": found[1]}
        inp = latent_in if c.concat is None else torch.cat([latent_in, c.concat.to(dtype)], dim=1)
        cache = {"cache": self.step_cache.slot()} if self.step_cache is not None else {}
        out = self.unet(inp, t, context.to(dtype), timestep_cond=c.timestep_cond, **residuals, **(added or {}),
                        **cache).float()
        if self.prediction_type == "consistency" and self.schedule.clip_denoised:
            return (c_skip * x + c_out * out).clamp(-1, 1)
        return c_skip * x + c_out * out

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor | float, conditioning: Conditioning,
                 cfg_scale: float = 1.0, with_uncond: bool = False):
        """x_0 estimate for a batch x (B, C, H, W) at noise level sigma (scalar or (B,)); `with_uncond`: the pair
        (guided estimate, the negative prompt's own estimate), which CFG++ renoises with."""
        sigma = torch.as_tensor(sigma, dtype=torch.float32, device=x.device).reshape(-1).expand(x.shape[0])
        if self.step_cache is not None:
            self.step_cache.next_evaluation()
        denoised, uncond = self.guided(x, sigma, conditioning, cfg_scale)
        if with_uncond:
            return denoised, (uncond if uncond is not None else denoised)
        if self.boundary == "lcm" and self.prediction_type != "consistency":
            c_skip, c_out = lcm_boundary(self.schedule.sigma_to_t(sigma)[:, None, None, None])
            return c_skip * x / (sigma[:, None, None, None] ** 2 + 1) ** 0.5 + c_out * denoised
        return denoised

    def guided(self, x: torch.Tensor, sigma: torch.Tensor, c: Conditioning, cfg_scale: float):
        """(guided x_0 estimate, the negative prompt's estimate or None when no unconditional pass ran)."""
        ones, zeros = torch.ones(len(x), device=x.device), torch.zeros(len(x), device=x.device)
        if c.parts is not None:
            return self.composed(x, sigma, c, cfg_scale, ones, zeros)
        if c.uncond is None or cfg_scale == 1.0:
            return self.model_output(x, sigma, c.cond, c, ones, c.added(True)), None
        if c.cond.shape[1] == c.uncond.shape[1]:
            cond, uncond = c.added(True), c.added(False)
            added = {k: torch.cat([cond[k], uncond[k]]) for k in cond}
            both = self.model_output(torch.cat([x, x]), torch.cat([sigma, sigma]), torch.cat([c.cond, c.uncond]),
                                     self._doubled(c), torch.cat([ones, zeros]), added)
            d_cond, d_uncond = both.chunk(2)
        else:   # prompts of different chunk counts: two passes, as A1111 does by default
            d_cond = self.model_output(x, sigma, c.cond, c, ones, c.added(True))
            d_uncond = self.model_output(x, sigma, c.uncond, c, zeros, c.added(False))
        return d_uncond + cfg_scale * (d_cond - d_uncond), d_uncond

    def composed(self, x, sigma, c: Conditioning, cfg_scale: float, ones, zeros):
        """Composable diffusion (Liu et al. 2022, Eq. 10), as A1111 combines it: D = D_u + w sum_j a_j (D_j - D_u)
        over the prompt's AND parts j with weights a_j, one pass each."""
        d_uncond = self.model_output(x, sigma, c.uncond, c, zeros, c.added(False))
        out = d_uncond.clone()
        for context, pooled, weight in c.parts:
            added = {} if pooled is None else {"text_embeds": pooled, "time_ids": c.time_ids}
            out += (self.model_output(x, sigma, context, c, ones, added) - d_uncond) * (weight * cfg_scale)
        return out, d_uncond

    @staticmethod
    def _doubled(c: Conditioning) -> Conditioning:
        double = lambda t: None if t is None else torch.cat([t, t])  # noqa: E731
        return Conditioning(c.cond, c.uncond, double(c.concat), double(c.timestep_cond), c.control)
