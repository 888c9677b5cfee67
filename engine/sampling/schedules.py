"""Noise schedules: the discrete DDPM schedule a model was trained on, and sigma grids for sampling.

Sigmas are the k-diffusion parametrisation (Karras et al. 2022): x_sigma = x_0 + sigma * eps, with
sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t) for the DDPM timestep t. Every grid is descending and
ends with 0 (or with sigma at t=0 where a timestep sampler stops there).
"""
import math

import numpy as np
import torch
from scipy import stats


# alpha_bar at the last timestep of a zero-terminal-SNR schedule: A1111 and ComfyUI keep it this far above 0 so
# that sigma_max stays finite (about 4,500) for the samplers
ZERO_SNR_LAST_ALPHA_BAR = 4.8973451890853435e-08


def rescale_zero_terminal_snr(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """Lin et al. 2024, Algorithm 1: shift sqrt(alpha_bar) so the last timestep holds no signal, and scale it
    so the first is unchanged. SD's own schedule leaves 0.068 of the picture in x_T, which a model learns to
    read while training and never finds in the pure noise it samples from."""
    root = alphas_cumprod.sqrt()
    first, last = root[0].clone(), root[-1].clone()
    rescaled = ((root - last) * first / (first - last)) ** 2
    rescaled[-1] = ZERO_SNR_LAST_ALPHA_BAR
    return rescaled


class DiscreteSchedule:
    """The training schedule: 1000 "scaled linear" betas (SD1.x/2.x), sigma <-> timestep conversions;
    optionally rescaled to zero terminal SNR (diffusers' `rescale_betas_zero_snr`)."""

    def __init__(self, beta_start: float = 0.00085, beta_end: float = 0.012, num_timesteps: int = 1000,
                 zero_terminal_snr: bool = False):
        betas = torch.linspace(beta_start ** 0.5, beta_end ** 0.5, num_timesteps, dtype=torch.float64) ** 2
        self.zero_terminal_snr = zero_terminal_snr
        self.alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)                         # alpha_bar_t
        if zero_terminal_snr:
            self.alphas_cumprod = rescale_zero_terminal_snr(self.alphas_cumprod)
        self.sigmas = ((1 - self.alphas_cumprod) / self.alphas_cumprod).sqrt().float()  # ascending in t
        self.log_sigmas = self.sigmas.log()

    @property
    def sigma_min(self) -> float:
        return self.sigmas[0].item()

    @property
    def sigma_max(self) -> float:
        return self.sigmas[-1].item()

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        """Fractional timestep whose log-sigma interpolates linearly between neighbours (k-diffusion)."""
        log_sigma = sigma.float().log()
        dists = log_sigma - self.log_sigmas.to(sigma.device)[:, None]
        low = dists.ge(0).cumsum(dim=0).argmax(dim=0).clamp(max=len(self.sigmas) - 2)
        high = low + 1
        low_log, high_log = self.log_sigmas.to(sigma.device)[low], self.log_sigmas.to(sigma.device)[high]
        w = ((low_log - log_sigma) / (low_log - high_log)).clamp(0, 1)
        return ((1 - w) * low + w * high).view(sigma.shape)

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=torch.float32)
        low, high = t.floor().long(), t.ceil().long()
        w = t - low
        return ((1 - w) * self.log_sigmas[low] + w * self.log_sigmas[high]).exp()


def _with_zero(sigmas: torch.Tensor) -> torch.Tensor:
    return torch.cat([sigmas.float(), sigmas.new_zeros(1, dtype=torch.float32)])


def uniform(n: int, schedule: DiscreteSchedule) -> torch.Tensor:
    """k-diffusion's default for a discrete model (A1111's "Uniform"): timesteps evenly spaced from 999 to 0."""
    t = torch.linspace(len(schedule.sigmas) - 1, 0, n)
    return _with_zero(schedule.t_to_sigma(t))


def normal(n: int, schedule: DiscreteSchedule) -> torch.Tensor:
    """A1111's "Normal": n timesteps evenly spaced from sigma_max's to sigma_min's (the ends included)."""
    start = schedule.sigma_to_t(torch.tensor(schedule.sigma_max))
    end = schedule.sigma_to_t(torch.tensor(schedule.sigma_min))
    return _with_zero(schedule.t_to_sigma(torch.linspace(start.item(), end.item(), n)))


def simple(n: int, schedule: DiscreteSchedule) -> torch.Tensor:
    """ComfyUI's and A1111's "Simple": every (1000 / n)-th training sigma, counted down from the last."""
    stride = len(schedule.sigmas) / n
    return _with_zero(torch.stack([schedule.sigmas[-(1 + int(i * stride))] for i in range(n)]))


def karras(n: int, schedule: DiscreteSchedule, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. 2022, Eq. 5, between the model's sigma_min and sigma_max."""
    return karras_between(n, schedule.sigma_min, schedule.sigma_max, rho)


def karras_between(n: int, low: float, high: float, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. 2022, Eq. 5: sigma_i = (max^(1/rho) + i/(n-1) (min^(1/rho) - max^(1/rho)))^rho, then 0."""
    ramp = torch.linspace(0, 1, n)
    min_inv, max_inv = low ** (1 / rho), high ** (1 / rho)
    return _with_zero((max_inv + ramp * (min_inv - max_inv)) ** rho)


def exponential(n: int, schedule: DiscreteSchedule) -> torch.Tensor:
    """Sigmas evenly spaced in log space from sigma_max to sigma_min."""
    return _with_zero(torch.linspace(math.log(schedule.sigma_max), math.log(schedule.sigma_min), n).exp())


def polyexponential(n: int, schedule: DiscreteSchedule, rho: float = 1.0) -> torch.Tensor:
    """k-diffusion's polynomial in log sigma: log sigma_i = log min + (1 - i/(n-1))^rho (log max - log min)."""
    ramp = torch.linspace(1, 0, n) ** rho
    log_min, log_max = math.log(schedule.sigma_min), math.log(schedule.sigma_max)
    return _with_zero((ramp * (log_max - log_min) + log_min).exp())


def kl_optimal(n: int, schedule: DiscreteSchedule) -> torch.Tensor:
    """Sabour et al. 2024, "Align Your Steps", Eq. (KL-optimal): sigmas evenly spaced in arctan(sigma), from
    sigma_max to sigma_min. As in A1111 the grid ends at sigma_min, not 0 (n + 1 values)."""
    fraction = torch.arange(n + 1) / n
    return torch.tan(fraction * math.atan(schedule.sigma_min) + (1 - fraction) * math.atan(schedule.sigma_max))


# the 10-step sigmas NVIDIA published for SD1.5 and SDXL (Sabour et al. 2024), interpolated to other step counts
ALIGN_YOUR_STEPS = {
    "sd": [14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029],
    "sdxl": [14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029],
}


def align_your_steps(n: int, schedule: DiscreteSchedule, family: str = "sd") -> torch.Tensor:
    """Align Your Steps: the published grid for the family, log-linearly interpolated to n sigmas unless n is
    11 (NVIDIA's how-to, as A1111 does it), then 0."""
    sigmas = ALIGN_YOUR_STEPS["sdxl" if family == "sdxl" else "sd"]
    if n != len(sigmas):
        xs = np.linspace(0, 1, len(sigmas))
        sigmas = np.exp(np.interp(np.linspace(0, 1, n), xs, np.log(sigmas[::-1])))[::-1]
    return _with_zero(torch.tensor(np.array(sigmas), dtype=torch.float32))


def beta(n: int, schedule: DiscreteSchedule, alpha: float = 0.6, beta_: float = 0.6) -> torch.Tensor:
    """Lee et al. 2024, "Beta Sampling is All You Need": the Beta(alpha, beta) quantiles of 1 - i/(n-1),
    mapped linearly onto [sigma_min, sigma_max] (A1111's form; its default alpha = beta = 0.6)."""
    quantiles = stats.beta.ppf(1 - np.linspace(0, 1, n), alpha, beta_)
    sigmas = schedule.sigma_min + quantiles * (schedule.sigma_max - schedule.sigma_min)
    return _with_zero(torch.tensor(sigmas, dtype=torch.float32))


def sgm_uniform(n: int, schedule: DiscreteSchedule) -> torch.Tensor:
    """Timesteps evenly spaced over n+1 points from sigma_max's to sigma_min's, the last dropped (SGM / SDXL)."""
    start = schedule.sigma_to_t(torch.tensor(schedule.sigma_max))
    end = schedule.sigma_to_t(torch.tensor(schedule.sigma_min))
    return _with_zero(schedule.t_to_sigma(torch.linspace(start.item(), end.item(), n + 1)[:-1]))


def ddim_uniform(n: int, schedule: DiscreteSchedule, final_sigma: float = 0.0) -> torch.Tensor:
    """DDIM's uniform discretisation (Song et al. 2021): timesteps 1, 1 + c, 1 + 2c, ... with c = 1000 // n,
    taken in descending order. The DDIM sampler ends at alpha_bar_0 (`final_sigma` = sigma at t=0)."""
    stride = max(len(schedule.sigmas) // n, 1)
    timesteps = torch.arange(1, len(schedule.sigmas), stride)[:n].flip(0)
    return torch.cat([schedule.sigmas[timesteps], torch.tensor([final_sigma])]).float()


def lcm_timesteps(steps: int, strength: float = 1.0, original_steps: int = 50, train_steps: int = 1000) -> list[int]:
    """The LCM inference timesteps: `steps` evenly spaced indices into the distillation grid
    k - 1, 2k - 1, ..., (k = train_steps / original_steps), cut to its first `strength` part for img2img."""
    k = train_steps // original_steps
    grid = [(i + 1) * k - 1 for i in range(int(original_steps * strength))][::-1]
    if not 1 <= steps <= len(grid):
        raise ValueError(f"LCM takes 1 to {len(grid)} steps at denoising strength {strength:g} (asked for {steps})")
    return [grid[math.floor(i * len(grid) / steps)] for i in range(steps)]


def lcm(steps: int, schedule: DiscreteSchedule, strength: float = 1.0) -> torch.Tensor:
    """Sigmas of the timesteps a latent consistency model was distilled on (Luo et al. 2023), then 0."""
    t = torch.tensor(lcm_timesteps(steps, strength))
    return torch.cat([schedule.sigmas[t], torch.zeros(1)]).float()


# A1111 1.10's schedule types in its order ("Automatic", the sampler's own default, is resolved before this),
# then LCM's distillation grid
SCHEDULES = {
    "Uniform": uniform,
    "Karras": karras,
    "Exponential": exponential,
    "Polyexponential": polyexponential,
    "SGM Uniform": sgm_uniform,
    "KL Optimal": kl_optimal,
    "Align Your Steps": align_your_steps,
    "Simple": simple,
    "Normal": normal,
    "DDIM": ddim_uniform,
    "Beta": beta,
    "LCM": lcm,
}
