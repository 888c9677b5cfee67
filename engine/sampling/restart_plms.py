"""Two more of A1111's samplers: Restart (Xu et al. 2023) and PLMS (Liu et al. 2022, CompVis's form).

Restart: Heun steps down a Karras schedule; from 20 steps on, part of the budget goes to restarts: at
sigma 0.1 the sample is noised back up to sigma 2 and that stretch is sampled again (once with 9 restart
steps; from 36 steps twice with steps // 4), as A1111's restart_sampler chooses.
PLMS: pseudo linear multistep on DDIM's timesteps: eps is extrapolated from the last four (Adams-Bashforth
coefficients), the first step being a pseudo improved Euler step; written over sigmas like engine.ddim.
"""
import torch

from .k_samplers import to_d
from .schedules import karras_between


def restart_steps(sigmas: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(sigma, next sigma) of every Heun step, restarts included, for a run of len(sigmas) - 1 steps."""
    steps = len(sigmas) - 1
    restarts = {}
    if steps >= 20:
        restart_n, times = (steps // 4, 2) if steps >= 36 else (9, 1)
        sigmas = karras_between(steps - restart_n * times, sigmas[-2].item(), sigmas[0].item()).to(sigmas.device)
        restarts = {int(torch.argmin((sigmas - 0.1).abs())): (restart_n + 1, times, 2.0)}
    pairs = []
    for i in range(len(sigmas) - 1):
        pairs.append((sigmas[i], sigmas[i + 1]))
        if i + 1 in restarts:
            n, times, top = restarts[i + 1]
            high = int(torch.argmin((sigmas - top).abs()))
            if high < i + 1:
                again = karras_between(n, sigmas[i + 1].item(), sigmas[high].item()).to(sigmas.device)[:-1]
                pairs += list(zip(again[:-1], again[1:])) * times
    return pairs


@torch.no_grad()
def sample_restart(model, x, sigmas, noise=None, callback=None, s_noise=1.0, **_):
    """Restart sampling: Heun steps; where the next step starts above where the last one ended, fresh noise
    brings the sample up to that sigma first."""
    last = None
    for i, (sigma, sigma_next) in enumerate(restart_steps(sigmas)):
        if last is not None and last < sigma:
            x = x + noise(sigma, sigma_next) * s_noise * (sigma ** 2 - last ** 2) ** 0.5
        denoised = model(x, sigma)
        if callback is not None:
            callback(i, x, denoised)
        d = to_d(x, sigma, denoised)
        if sigma_next == 0:
            x = x + d * (sigma_next - sigma)
        else:
            x_2 = x + d * (sigma_next - sigma)
            x = x + (d + to_d(x_2, sigma_next, model(x_2, sigma_next))) / 2 * (sigma_next - sigma)
        last = sigma_next
    return x


ADAMS_BASHFORTH = {1: [1.0], 2: [3 / 2, -1 / 2], 3: [23 / 12, -16 / 12, 5 / 12], 4: [55 / 24, -59 / 24, 37 / 24, -9 / 24]}


@torch.no_grad()
def sample_plms(model, x, sigmas, callback=None, **_):
    """PLMS: x_next = x_0' + sigma_next eps', with x_0' = x - sigma eps' and eps' the multistep estimate."""
    history = []
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = model(x, sigma)
        if callback is not None:
            callback(i, x, denoised)
        eps = (x - denoised) / sigma
        if not history and sigma_next > 0:       # pseudo improved Euler: the mean of eps here and one step on
            ahead = denoised + sigma_next * eps
            eps_used = (eps + (ahead - model(ahead, sigma_next)) / sigma_next) / 2
        else:
            recent = [eps, *history[::-1]][:4]
            eps_used = sum(c * e for c, e in zip(ADAMS_BASHFORTH[len(recent)], recent))
        x = x - sigma * eps_used + sigma_next * eps_used
        history = (history + [eps])[-3:]
    return x
