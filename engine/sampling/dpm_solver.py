"""DPM-Solver (Lu et al. 2022) in noise prediction over log-SNR time t = -log(sigma): A1111's "DPM fast"
(fixed steps of order 3, 2, 1 spending `steps` model calls) and "DPM adaptive" (DPM-Solver-23 with a PID
step-size controller; the number of calls follows the error, not `steps`). Both run between the first and
the last non-zero sigma of the schedule, as A1111 hands k-diffusion sigma_max and sigma_min.
"""
import math

import torch

from .k_samplers import ancestral_step


def _sigma(t):
    return t.neg().exp()


class _Eps:
    """eps(x, t) = (x - D(x, sigma)) / sigma, each (x, t) evaluated once per step (the cache of one step)."""

    def __init__(self, model, callback):
        self.model, self.callback, self.calls, self.cache = model, callback, 0, {}

    def __call__(self, key, x, t):
        if key not in self.cache:
            denoised = self.model(x, _sigma(t))
            if self.callback is not None:                   # every model call counts as a step of progress
                self.callback(self.calls, x, denoised)
            self.calls += 1
            self.cache[key] = (x - denoised) / _sigma(t)
        return self.cache[key]


def _step_1(eps, x, t, t_next):
    return x - _sigma(t_next) * (t_next - t).expm1() * eps("eps", x, t)


def _step_2(eps, x, t, t_next, r1=0.5):
    h = t_next - t
    e = eps("eps", x, t)
    s1 = t + r1 * h
    u1 = x - _sigma(s1) * (r1 * h).expm1() * e
    e1 = eps("eps_r1", u1, s1)
    return x - _sigma(t_next) * h.expm1() * e - _sigma(t_next) / (2 * r1) * h.expm1() * (e1 - e)


def _step_3(eps, x, t, t_next, r1=1 / 3, r2=2 / 3):
    h = t_next - t
    e = eps("eps", x, t)
    s1, s2 = t + r1 * h, t + r2 * h
    u1 = x - _sigma(s1) * (r1 * h).expm1() * e
    e1 = eps("eps_r1", u1, s1)
    u2 = x - _sigma(s2) * (r2 * h).expm1() * e - _sigma(s2) * (r2 / r1) * ((r2 * h).expm1() / (r2 * h) - 1) * (e1 - e)
    e2 = eps("eps_r2", u2, s2)
    return x - _sigma(t_next) * h.expm1() * e - _sigma(t_next) / r2 * (h.expm1() / h - 1) * (e2 - e)


def _ends(sigmas):
    positive = sigmas[sigmas > 0]
    return -positive.max().log(), -positive.min().log()


def _ancestral(t, t_next, t_end, eta):
    """(t to step to, sigma of the noise to add) for an ancestral step of size eta."""
    if not eta:
        return t_next, 0.0
    down, _ = ancestral_step(_sigma(t).item(), _sigma(t_next).item(), eta)
    t_down = torch.minimum(t_end, -torch.tensor(down).log())
    return t_down, (_sigma(t_next) ** 2 - _sigma(t_down) ** 2) ** 0.5


@torch.no_grad()
def sample_dpm_fast(model, x, sigmas, noise=None, callback=None, eta=1.0, s_noise=1.0, **_):
    """DPM-Solver-fast: `steps` model calls in steps of order 3 (the last ones 2 and 1), evenly in t."""
    nfe = len(sigmas) - 1
    t_start, t_end = _ends(sigmas)
    m = math.floor(nfe / 3) + 1
    ts = torch.linspace(t_start.item(), t_end.item(), m + 1)
    orders = [3] * (m - 2) + [2, 1] if nfe % 3 == 0 else [3] * (m - 1) + [nfe % 3]
    eps = _Eps(model, callback)
    for i, order in enumerate(orders):
        t, t_next = ts[i], ts[i + 1]
        t_to, noise_sigma = _ancestral(t, t_next, t_end, eta)
        eps.cache = {}
        x = (_step_1, _step_2, _step_3)[order - 1](eps, x, t, t_to)
        if noise_sigma:
            x = x + noise_sigma * s_noise * noise(_sigma(t), _sigma(t_next))
    return x


class PIDStepSize:
    """A PID controller of the step size from the error estimate (Söderlind 2003, as k-diffusion uses)."""

    def __init__(self, h, pcoeff, icoeff, dcoeff, order, accept_safety=0.81, eps=1e-8):
        self.h, self.accept_safety, self.eps = h, accept_safety, eps
        self.b = ((pcoeff + icoeff + dcoeff) / order, -(pcoeff + 2 * dcoeff) / order, dcoeff / order)
        self.errors = []

    def propose(self, error) -> bool:
        inverse = 1 / (float(error) + self.eps)
        self.errors = self.errors or [inverse] * 3
        self.errors[0] = inverse
        factor = 1 + math.atan(math.prod(e ** b for e, b in zip(self.errors, self.b)) - 1)
        accept = factor >= self.accept_safety
        if accept:
            self.errors[2], self.errors[1] = self.errors[1], self.errors[0]
        self.h *= factor
        return accept


@torch.no_grad()
def sample_dpm_adaptive(model, x, sigmas, noise=None, callback=None, eta=1.0, s_noise=1.0, order=3, rtol=0.05,
                        atol=0.0078, h_init=0.05, pcoeff=0.0, icoeff=1.0, dcoeff=0.0, accept_safety=0.81, **_):
    """DPM-Solver-23 (order 3; 12 with order=2): each step's two estimates give the error that sets the next
    step's size; a step whose error is too large is taken again, smaller."""
    s, t_end = _ends(sigmas)
    x_prev = x
    pid = PIDStepSize(h_init, pcoeff, icoeff, dcoeff, 1.5 if eta else order, accept_safety)
    atol, rtol = torch.tensor(atol), torch.tensor(rtol)
    eps = _Eps(model, callback)
    while s < t_end - 1e-5:
        t = torch.minimum(t_end, s + pid.h)
        t_to, noise_sigma = _ancestral(s, t, t_end, eta)
        eps.cache = {}
        if order == 2:
            low, high = _step_1(eps, x, s, t_to), _step_2(eps, x, s, t_to)
        else:
            low, high = _step_2(eps, x, s, t_to, r1=1 / 3), _step_3(eps, x, s, t_to)
        delta = torch.maximum(atol, rtol * torch.maximum(low.abs(), x_prev.abs()))
        error = torch.linalg.norm((low - high) / delta) / x.numel() ** 0.5
        if pid.propose(error):
            x_prev = low
            x = high + (noise_sigma * s_noise * noise(_sigma(s), _sigma(t)) if noise_sigma else 0)
            s = t
    return x
