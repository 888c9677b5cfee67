"""Samplers and schedules, chosen by A1111's names from two registries.

"DPM++ 2M Karras" = sampler "DPM++ 2M" + schedule "Karras". A sampler's "Automatic" schedule is its
A1111 default. `noise` says which randomness a sampler needs: none, per-image ancestral draws, or a
Brownian tree. `unit_start` samplers (DDIM, UniPC) start from unit-variance DDPM noise, as
A1111's timestep samplers and diffusers do; the others from noise * sigma_max, as k-diffusion does.
`boundary` names the consistency-function scalings the denoiser wraps the model in (LCM, Consistency).
"""
import functools
from dataclasses import dataclass, field
from typing import Callable

import torch

from . import k_samplers
from .consistency import sample_consistency, sample_lcm, sample_tcd
from .ddim import sample_ddim, sample_ddim_cfgpp
from .dpm_solver import sample_dpm_adaptive, sample_dpm_fast
from .restart_plms import sample_plms, sample_restart
from .denoiser import Conditioning, Denoiser
from .noise import BrownianNoise, ImageNoise
from .schedules import SCHEDULES, DiscreteSchedule, align_your_steps, ddim_uniform
from .unipc import sample_unipc


@dataclass(frozen=True)
class SamplerSpec:
    function: Callable
    default_schedule: str = "Uniform"
    noise: str | None = None            # None, "ancestral" or "brownian"
    unit_start: bool = False
    options: tuple[str, ...] = ()       # keyword options a user may set (eta, s_noise, ...)
    defaults: dict = field(default_factory=dict)
    boundary: str | None = None         # "lcm": the denoiser applies LCM's c_skip / c_out
    second_order: bool = False          # two model calls a step (A1111 counts 2 steps - 1 for prompt editing)
    discard_penultimate: bool = False   # A1111's discard_next_to_last_sigma: steps + 1 sigmas, the last but one dropped
    cfg_pp: bool = False                # CFG++: the model gives (guided at CFG / 12.5, unconditional) estimates
    needs_schedule: bool = False        # the sampler takes the model's DiscreteSchedule (`schedule=`)

    def model_calls(self, steps: int) -> int:
        """A1111's total_steps: the model calls a run of `steps` makes, which prompt editing counts in."""
        return steps * 2 - 1 if self.second_order else steps


SAMPLERS: dict[str, SamplerSpec] = {
    "Euler": SamplerSpec(k_samplers.sample_euler),
    "Euler a": SamplerSpec(k_samplers.sample_euler_ancestral, noise="ancestral", options=("eta", "s_noise")),
    "Heun": SamplerSpec(k_samplers.sample_heun, second_order=True),
    "LMS": SamplerSpec(k_samplers.sample_lms),
    "DPM++ 2M": SamplerSpec(k_samplers.sample_dpmpp_2m, "Karras"),
    "DPM++ 2M SDE": SamplerSpec(k_samplers.sample_dpmpp_2m_sde, "Exponential", "brownian", options=("eta", "s_noise")),
    "DPM++ SDE": SamplerSpec(k_samplers.sample_dpmpp_sde, "Karras", "brownian", options=("eta", "s_noise"),
                             second_order=True),
    "DPM++ 2S a": SamplerSpec(k_samplers.sample_dpmpp_2s_ancestral, "Karras", "ancestral", options=("eta", "s_noise"),
                              second_order=True),
    "DPM++ 2M SDE Heun": SamplerSpec(functools.partial(k_samplers.sample_dpmpp_2m_sde, solver_type="heun"),
                                     "Exponential", "brownian", options=("eta", "s_noise")),
    "DPM++ 3M SDE": SamplerSpec(k_samplers.sample_dpmpp_3m_sde, "Exponential", "brownian", options=("eta", "s_noise"),
                                discard_penultimate=True),
    "DPM2": SamplerSpec(k_samplers.sample_dpm_2, "Karras", second_order=True, discard_penultimate=True),
    "DPM2 a": SamplerSpec(k_samplers.sample_dpm_2_ancestral, "Karras", "ancestral", options=("eta", "s_noise"),
                          second_order=True, discard_penultimate=True),
    "DPM fast": SamplerSpec(sample_dpm_fast, noise="ancestral", options=("eta", "s_noise")),
    "DPM adaptive": SamplerSpec(sample_dpm_adaptive, noise="ancestral", options=("eta", "s_noise")),
    "Restart": SamplerSpec(sample_restart, "Karras", "ancestral", options=("s_noise",), second_order=True),
    "DDIM": SamplerSpec(sample_ddim, "DDIM", "ancestral", unit_start=True, options=("eta",), defaults={"eta": 0.0}),
    "DDIM CFG++": SamplerSpec(sample_ddim_cfgpp, "DDIM", unit_start=True, cfg_pp=True),
    "PLMS": SamplerSpec(sample_plms, "DDIM", unit_start=True),
    "UniPC": SamplerSpec(sample_unipc, unit_start=True, options=("order", "variant")),
    "LCM": SamplerSpec(sample_lcm, "LCM", "ancestral", unit_start=True, boundary="lcm"),
    "Consistency": SamplerSpec(sample_consistency, "LCM", "ancestral", unit_start=True, options=("sigma_min",),
                               boundary="lcm"),
    "TCD": SamplerSpec(sample_tcd, "LCM", "ancestral", unit_start=True, options=("eta",), defaults={"eta": 0.3},
                       needs_schedule=True),
}

SCHEDULE_NAMES = ["Automatic", *SCHEDULES]


def resolve_schedule(sampler: str, schedule: str) -> str:
    """The schedule actually used: "Automatic" means the sampler's A1111 default."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of: {', '.join(SAMPLERS)}")
    if schedule not in SCHEDULE_NAMES:
        raise ValueError(f"unknown schedule {schedule!r}; choose one of: {', '.join(SCHEDULE_NAMES)}")
    return SAMPLERS[sampler].default_schedule if schedule == "Automatic" else schedule


def make_sigmas(sampler: str, schedule: str, steps: int, model_schedule: DiscreteSchedule,
                family: str = "sd") -> torch.Tensor:
    """Descending sigmas for this sampler and schedule (steps + 1 values; KL Optimal ends at sigma_min, as
    A1111's does). `family` ("sd" or "sdxl") picks the Align Your Steps grid."""
    name = resolve_schedule(sampler, schedule)
    if name == "DDIM" and sampler in ("DDIM", "DDIM CFG++", "PLMS"):   # their own grid stops at alpha_bar_0
        return ddim_uniform(steps, model_schedule, final_sigma=model_schedule.sigma_min)
    if SAMPLERS[sampler].discard_penultimate:       # A1111: one more sigma, and the last but one dropped
        sigmas = _schedule(name, steps + 1, model_schedule, family)
        return torch.cat([sigmas[:-2], sigmas[-1:]])
    return _schedule(name, steps, model_schedule, family)


def _schedule(name: str, steps: int, model_schedule: DiscreteSchedule, family: str) -> torch.Tensor:
    if name == "Align Your Steps":
        return align_your_steps(steps, model_schedule, family)
    return SCHEDULES[name](steps, model_schedule)


__all__ = ["SAMPLERS", "SCHEDULES", "SCHEDULE_NAMES", "BrownianNoise", "Conditioning", "Denoiser", "DiscreteSchedule",
           "ImageNoise", "SamplerSpec", "make_sigmas", "resolve_schedule"]
