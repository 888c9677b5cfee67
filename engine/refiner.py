"""The refiner hand-over as A1111 1.6+ does it: one sampling run whose model changes mid-way.

Each model call reads the training timestep nearest the current sigma, t, and counts the run as
(999 - t) / 1000 complete; from the first call at which that reaches `Switch at`, the refiner's UNet,
with its own prompt encoding and micro-conditioning, denoises the rest of the same sampler's run (the
latent, the sigmas and a multistep sampler's history carry on). A refiner equal to the base never switches.
"""
from dataclasses import dataclass

import torch

from .errors import EngineError
from .sampling import Conditioning, Denoiser, DiscreteSchedule

DEFAULT_SWITCH_AT = 0.8      # A1111's "Switch at" slider


@dataclass
class Handover:
    denoiser: Denoiser               # the refiner's
    conditioning: Conditioning       # the prompt as the refiner's text towers encode it
    switch_at: float
    schedule: DiscreteSchedule       # the base model's, as A1111 reads the timestep from the running model
    switched: bool = False

    def due(self, sigma: torch.Tensor) -> bool:
        """Whether this call (and every later one) goes to the refiner."""
        if not self.switched:
            sigmas = self.schedule.sigmas
            t = torch.argmin(torch.abs(sigmas - sigma.max().to(sigmas.device, sigmas.dtype))).item()
            self.switched = (999 - t) / 1000 >= self.switch_at
        return self.switched


def usable_refiner(base, refiner):
    """The refiner to hand over to, or None when there is none (or it is the base itself)."""
    if refiner is None or refiner is base:
        return None
    if refiner.unet.config.out_channels != base.unet.config.out_channels or \
            refiner.vae.config.downscale != base.vae.config.downscale:
        raise EngineError(f"the refiner {refiner.name} works in another latent space than {base.name}")
    if refiner.unet.config.in_channels != refiner.unet.config.out_channels:
        raise EngineError(f"the refiner {refiner.name} is an inpainting model; choose a plain one")
    return refiner


def refiner_fields(refiner, req) -> dict:
    """A1111's infotext fields for a run that was handed over."""
    title = f"{refiner.name} [{refiner.model_hash}]" if refiner.model_hash else refiner.name
    return {"Refiner": title, "Refiner switch at": req.refiner_switch_at}
