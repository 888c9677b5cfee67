"""DDIM (Song et al. 2021, Eq. 12) written over sigmas.

With alpha_bar = 1 / (1 + sigma^2) and x = x_ddpm / sqrt(alpha_bar), the DDIM update
x_prev = sqrt(a_prev) x_0 + sqrt(1 - a_prev - s^2) eps + s z, s = eta sqrt((1-a_prev)/(1-a)) sqrt(1 - a/a_prev),
becomes x_prev = x_0 + sqrt((1 - a_prev - s^2) / a_prev) eps + s / sqrt(a_prev) z; for eta = 0 it is an
Euler step of the probability-flow ODE. Its own schedule ends at alpha_bar_0 rather than sigma = 0.
"""
import torch


@torch.no_grad()
def sample_ddim(model, x, sigmas, noise=None, callback=None, eta=0.0, **_):
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = model(x, sigma)
        if callback is not None:
            callback(i, x, denoised)
        eps = (x - denoised) / sigma
        if eta and sigma_next > 0:
            a, a_next = 1 / (1 + sigma ** 2), 1 / (1 + sigma_next ** 2)
            s = eta * ((1 - a_next) / (1 - a) * (1 - a / a_next)) ** 0.5
            x = denoised + ((1 - a_next - s ** 2) / a_next) ** 0.5 * eps + s / a_next ** 0.5 * noise(sigma, sigma_next)
        else:
            x = denoised + sigma_next * eps
    return x


@torch.no_grad()
def sample_ddim_cfgpp(model, x, sigmas, callback=None, **_):
    """DDIM CFG++ (Chung et al. 2024): the guided x_0 (CFG scale / 12.5, as A1111 maps it) renoised along the
    negative prompt's own noise direction: x_next = x_0^w + sigma_next (x - x_0^uncond) / sigma. `model`
    returns the pair (guided, unconditional) estimates."""
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised, uncond = model(x, sigma)
        if callback is not None:
            callback(i, x, denoised)
        x = denoised + sigma_next * (x - uncond) / sigma
    return x
