"""Consistency models: one network evaluation maps a noisy point of the probability-flow ODE to its origin.

A consistency function is f(x, sigma) = c_skip(sigma) x + c_out(sigma) F(x, sigma), with c_skip -> 1 and
c_out -> 0 at the smallest noise level, so f is the identity there (the boundary condition).

- Latent consistency models (Luo et al. 2023) put the boundary scalings on a discrete DDPM timestep t,
  scaled by 10, over the x_0 estimate of an eps- or v-predicting UNet:
  c_skip = s_d^2 / ((10 t)^2 + s_d^2), c_out = 10 t / sqrt((10 t)^2 + s_d^2), s_d = 0.5. Their sampler
  visits `steps` of the `original_steps` = 50 timesteps the model was distilled on (999, 979, ..., 19).
- Consistency models (Song et al. 2023, Sec. 3) in the EDM parametrisation:
  c_skip = s_d^2 / ((sigma - sigma_min)^2 + s_d^2), c_out = (sigma - sigma_min) s_d / sqrt(sigma^2 + s_d^2),
  the network seeing c_in x with c_in = 1 / sqrt(sigma^2 + s_d^2) and t = 250 log(sigma). Such a model (trained
  by consistency training, or distilled in that form) carries its noise range in a ConsistencySchedule.

Guidance for LCM-distilled UNets is an input, not a second pass: w enters as a Fourier embedding of
(w - 1) through the UNet's time_cond_proj_dim layer (LCM Eq. 9, the LCM_Dreamshaper_v7 layout).
The LCM timestep grid is schedules.lcm.
"""
import math
from dataclasses import dataclass

import torch

SIGMA_DATA = 0.5


def lcm_boundary(t: torch.Tensor, timestep_scaling: float = 10.0):
    """(c_skip, c_out) of a latent consistency model at discrete timestep t."""
    scaled = t * timestep_scaling
    return SIGMA_DATA ** 2 / (scaled ** 2 + SIGMA_DATA ** 2), scaled / (scaled ** 2 + SIGMA_DATA ** 2) ** 0.5


def cm_boundary(sigma: torch.Tensor, sigma_min: float, sigma_data: float = SIGMA_DATA):
    """(c_skip, c_out) of Song et al.'s consistency function at noise level sigma."""
    c_skip = sigma_data ** 2 / ((sigma - sigma_min) ** 2 + sigma_data ** 2)
    c_out = (sigma - sigma_min) * sigma_data / (sigma ** 2 + sigma_data ** 2) ** 0.5
    return c_skip, c_out


@dataclass(frozen=True)
class ConsistencySchedule:
    """The noise levels of an EDM-parametrised consistency model, as diffusers' CMStochasticIterativeScheduler
    config gives them: sigma from sigma_min to sigma_max on Karras et al.'s rho-spaced grid of
    num_train_timesteps levels (consistency training's final N), the data's std sigma_data, and the network's
    time input t = 250 log(sigma). `clip_denoised` clamps x_0 to [-1, 1] (pixel-space models)."""
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    sigma_data: float = SIGMA_DATA
    rho: float = 7.0
    num_train_timesteps: int = 40
    clip_denoised: bool = False
    zero_terminal_snr = False           # read by the infotext, as of a DiscreteSchedule

    @classmethod
    def from_config(cls, config: dict) -> "ConsistencySchedule":
        return cls(**{k: config[k] for k in ("sigma_min", "sigma_max", "sigma_data", "rho", "num_train_timesteps",
                                             "clip_denoised") if k in config})

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        return 250.0 * torch.log(sigma + 1e-44)

    def scalings(self, sigma: torch.Tensor):
        """(c_skip, c_out, c_in) of the consistency function f(x, sigma) = c_skip x + c_out F(c_in x, t)."""
        c_skip, c_out = cm_boundary(sigma, self.sigma_min, self.sigma_data)
        return c_skip, c_out, 1 / (sigma ** 2 + self.sigma_data ** 2) ** 0.5

    def karras(self, ramp: torch.Tensor) -> torch.Tensor:
        """Karras et al. 2022, Eq. 5: ramp 0 is sigma_max, 1 is sigma_min."""
        low, high = self.sigma_min ** (1 / self.rho), self.sigma_max ** (1 / self.rho)
        return (high + ramp * (low - high)) ** self.rho

    def grid(self, steps: int, strength: float = 1.0) -> torch.Tensor:
        """The sampling levels of CMStochasticIterativeScheduler.set_timesteps: `steps` of the N training levels,
        every (N // steps)-th from the top, then sigma_min (Algorithm 1's last jump adds no noise). With
        strength < 1 (img2img) the same spacing starts that far down the grid, so one step still denoises."""
        n = self.num_train_timesteps
        if not 1 <= steps <= n:
            raise ValueError(f"this consistency model has {n} noise levels: choose 1 to {n} steps, not {steps}")
        first = round((1.0 - min(max(strength, 0.0), 1.0)) * (n - 1))
        index = first + torch.arange(steps, dtype=torch.float64) * ((n - first) // steps)
        return torch.cat([self.karras(index / (n - 1)), torch.tensor([self.sigma_min], dtype=torch.float64)]).float()


def guidance_embedding(w: torch.Tensor, dim: int) -> torch.Tensor:
    """Fourier features of 1000 w for a UNet with time_cond_proj_dim = dim; w = guidance scale - 1."""
    w = torch.as_tensor(w, dtype=torch.float32).reshape(-1) * 1000.0
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32) * -(math.log(10000.0) / (half - 1)))
    angles = w[:, None] * freqs[None, :]
    emb = torch.cat([angles.sin(), angles.cos()], dim=1)
    return torch.nn.functional.pad(emb, (0, 1)) if dim % 2 else emb


def _jump_and_renoise(model, x, sigmas, noise, callback, renoise):
    """x_0 = f(x, sigma_i); then x = x_0 + renoise(sigma_{i+1}) z until the last jump, which is the picture."""
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        if callback is not None:
            callback(i, x, denoised)
        x = denoised
        if sigmas[i + 1] > 0:
            x = x + renoise(sigmas[i + 1]) * noise(sigmas[i], sigmas[i + 1])
    return x


@torch.no_grad()
def sample_lcm(model, x, sigmas, noise=None, callback=None, **_):
    """LCM multistep sampling (Luo et al. 2023, Algorithm 3): jump to the consistency function's x_0, then
    re-noise it to the next level, x = x_0 + sigma_next z."""
    return _jump_and_renoise(model, x, sigmas, noise, callback, lambda sigma: sigma)


@torch.no_grad()
def sample_consistency(model, x, sigmas, noise=None, callback=None, sigma_min=None, **_):
    """Multistep consistency sampling (Song et al. 2023, Algorithm 1): x_0 = f(x, T), then for each
    tau_n: x = x_0 + sqrt(tau_n^2 - eps^2) z, x_0 = f(x, tau_n). eps (sigma_min) is the smallest level,
    by default the grid's last non-zero sigma."""
    eps = float(sigmas[sigmas > 0].min()) if sigma_min is None else sigma_min
    return _jump_and_renoise(model, x, sigmas, noise, callback, lambda tau: (tau ** 2 - eps ** 2).clamp(min=0) ** 0.5)


@torch.no_grad()
def sample_tcd(model, x, sigmas, noise=None, callback=None, eta=0.3, schedule=None, **_):
    """Trajectory consistency distillation's strategic stochastic sampling (Zheng et al. 2024, Sec. 4.3), as
    diffusers' TCDScheduler and ComfyUI's sampler do it, with gamma = `eta`: from x at sigma_i the model's x_0
    and eps give the trajectory's point at the earlier timestep s = floor((1 - gamma) t_{i+1}),
    x_s = x_0 + sigma_s eps, which is re-noised forward to t_{i+1}: x = x_s + sqrt(sigma_{i+1}^2 - sigma_s^2) z.
    gamma 0 is DDIM; gamma 1 goes to the origin and re-noises, as LCM. The last step stops at s = 0 and gives
    x_s in DDPM form (sqrt(alpha_bar_0) x_s), as diffusers does. No consistency-function scalings: TCD's x_0
    is the plain one. `schedule`: the model's DiscreteSchedule, for the timesteps."""
    if not 0 <= eta <= 1:
        raise ValueError(f"TCD's gamma (eta) must be from 0 to 1, not {eta}")
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = model(x, sigma)
        if callback is not None:
            callback(i, x, denoised)
        eps = (x - denoised) / sigma
        t_next = int(schedule.sigma_to_t(sigma_next.reshape(1)).round().item()) if sigma_next > 0 else 0
        sigma_s = schedule.sigmas[math.floor((1 - eta) * t_next)].to(x)
        x = denoised + sigma_s * eps
        if sigma_next == 0:
            return x / (1 + sigma_s ** 2) ** 0.5
        if eta > 0:
            x = x + (sigma_next ** 2 - sigma_s ** 2).clamp(min=0) ** 0.5 * noise(sigma, sigma_next)
    return x
