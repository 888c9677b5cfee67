"""Samplers over sigmas (Karras et al. 2022 parametrisation), as plain functions.

Each takes a denoiser `model(x, sigma) -> x_0`, the starting latent `x` (already scaled to sigmas[0]),
the descending `sigmas` ending in 0, and where noise is injected a `noise(sigma, sigma_next)` sampler
returning unit Gaussian noise shaped like x. `callback(i, x, denoised)` runs after each model call
of the step; it may raise to stop sampling. The maths follows k-diffusion, which A1111 runs.
"""
import torch
from scipy import integrate


def to_d(x, sigma, denoised):
    """The probability-flow ODE derivative dx/dsigma = (x - D(x; sigma)) / sigma (Karras Eq. 3)."""
    return (x - denoised) / sigma


def ancestral_step(sigma_from: float, sigma_to: float, eta: float = 1.0) -> tuple[float, float]:
    """Split a step into a deterministic step to sigma_down and fresh noise of size sigma_up."""
    if not eta:
        return sigma_to, 0.0
    sigma_up = min(sigma_to, eta * (sigma_to ** 2 * (sigma_from ** 2 - sigma_to ** 2) / sigma_from ** 2) ** 0.5)
    return (sigma_to ** 2 - sigma_up ** 2) ** 0.5, sigma_up


def _notify(callback, i, x, denoised):
    if callback is not None:
        callback(i, x, denoised)


@torch.no_grad()
def sample_euler(model, x, sigmas, callback=None, **_):
    """Euler's method on the probability-flow ODE (Karras et al. 2022, Alg. 2 without churn)."""
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        _notify(callback, i, x, denoised)
        x = x + to_d(x, sigmas[i], denoised) * (sigmas[i + 1] - sigmas[i])
    return x


@torch.no_grad()
def sample_euler_ancestral(model, x, sigmas, noise, callback=None, eta=1.0, s_noise=1.0, **_):
    """Euler steps to sigma_down, then fresh noise of sigma_up: an ancestral sampler."""
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        sigma_down, sigma_up = ancestral_step(sigmas[i].item(), sigmas[i + 1].item(), eta)
        _notify(callback, i, x, denoised)
        x = x + to_d(x, sigmas[i], denoised) * (sigma_down - sigmas[i])
        if sigmas[i + 1] > 0:
            x = x + noise(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


@torch.no_grad()
def sample_heun(model, x, sigmas, callback=None, **_):
    """Heun's second-order method (Karras et al. 2022, Alg. 1); the last step to sigma=0 is Euler."""
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        _notify(callback, i, x, denoised)
        d = to_d(x, sigmas[i], denoised)
        dt = sigmas[i + 1] - sigmas[i]
        if sigmas[i + 1] == 0:
            x = x + d * dt
        else:
            x_2 = x + d * dt
            d_2 = to_d(x_2, sigmas[i + 1], model(x_2, sigmas[i + 1]))
            x = x + (d + d_2) / 2 * dt
    return x


def lms_coefficient(order: int, t, i: int, j: int) -> float:
    """Integral over [t_i, t_i+1] of the Lagrange basis polynomial j through the last `order` sigmas."""
    def basis(tau):
        prod = 1.0
        for k in range(order):
            if j != k:
                prod *= (tau - t[i - k]) / (t[i - j] - t[i - k])
        return prod
    return integrate.quad(basis, t[i], t[i + 1], epsrel=1e-4)[0]


@torch.no_grad()
def sample_lms(model, x, sigmas, callback=None, order=4, **_):
    """Linear multistep (Adams-Bashforth in sigma) over the last `order` derivatives."""
    t = sigmas.detach().cpu().double().numpy()
    ds = []
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        _notify(callback, i, x, denoised)
        ds = (ds + [to_d(x, sigmas[i], denoised)])[-order:]
        cur_order = min(i + 1, order)
        coeffs = [lms_coefficient(cur_order, t, i, j) for j in range(cur_order)]
        x = x + sum(c * d for c, d in zip(coeffs, reversed(ds)))
    return x


def _t(sigma):       # log-SNR time of DPM-Solver: t = -log(sigma)
    return -torch.as_tensor(sigma).log()


def _sigma(t):
    return (-t).exp()


@torch.no_grad()
def sample_dpmpp_2m(model, x, sigmas, callback=None, **_):
    """DPM-Solver++(2M) (Lu et al. 2022, Alg. 2): second-order multistep in data prediction."""
    old_denoised = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        _notify(callback, i, x, denoised)
        t, t_next = _t(sigmas[i]), _t(sigmas[i + 1])
        h = t_next - t
        if old_denoised is not None and sigmas[i + 1] != 0:
            r = (t - _t(sigmas[i - 1])) / h
            denoised_d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
        else:
            denoised_d = denoised
        x = (sigmas[i + 1] / sigmas[i]) * x - (-h).expm1() * denoised_d
        old_denoised = denoised
    return x


@torch.no_grad()
def sample_dpmpp_2m_sde(model, x, sigmas, noise, callback=None, eta=1.0, s_noise=1.0, solver_type="midpoint", **_):
    """DPM-Solver++(2M) SDE: the multistep solver with noise injected each step; the second-order correction
    is the midpoint one or (`solver_type="heun"`, A1111's "DPM++ 2M SDE Heun") the Heun-type one."""
    old_denoised, h_last = None, None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        _notify(callback, i, x, denoised)
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            t, s = _t(sigmas[i]), _t(sigmas[i + 1])
            h = s - t
            eta_h = eta * h
            x = sigmas[i + 1] / sigmas[i] * (-eta_h).exp() * x + (-h - eta_h).expm1().neg() * denoised
            if old_denoised is not None:
                r = h_last / h
                decay = (-h - eta_h).expm1().neg()
                weight = decay / (-h - eta_h) + 1 if solver_type == "heun" else 0.5 * decay
                x = x + weight * (1 / r) * (denoised - old_denoised)
            if eta:
                x = x + noise(sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * (-2 * eta_h).expm1().neg().sqrt() * s_noise
            h_last = h
        old_denoised = denoised
    return x


@torch.no_grad()
def sample_dpmpp_sde(model, x, sigmas, noise, callback=None, eta=1.0, s_noise=1.0, r=0.5, **_):
    """DPM-Solver++ SDE: two stages per step (at the midpoint in log-SNR, r = 1/2), noise at each."""
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        _notify(callback, i, x, denoised)
        if sigmas[i + 1] == 0:
            x = x + to_d(x, sigmas[i], denoised) * (sigmas[i + 1] - sigmas[i])
            continue
        t, t_next = _t(sigmas[i]), _t(sigmas[i + 1])
        h = t_next - t
        s = t + h * r
        fac = 1 / (2 * r)
        sd, su = ancestral_step(_sigma(t).item(), _sigma(s).item(), eta)
        s_ = _t(sd)
        x_2 = (_sigma(s_) / _sigma(t)) * x - (t - s_).expm1() * denoised
        x_2 = x_2 + noise(_sigma(t), _sigma(s)) * s_noise * su
        denoised_2 = model(x_2, _sigma(s))
        sd, su = ancestral_step(_sigma(t).item(), _sigma(t_next).item(), eta)
        t_next_ = _t(sd)
        denoised_d = (1 - fac) * denoised + fac * denoised_2
        x = (_sigma(t_next_) / _sigma(t)) * x - (t - t_next_).expm1() * denoised_d
        x = x + noise(_sigma(t), _sigma(t_next)) * s_noise * su
    return x


@torch.no_grad()
def sample_dpmpp_2s_ancestral(model, x, sigmas, noise, callback=None, eta=1.0, s_noise=1.0, **_):
    """DPM-Solver++(2S) single-step second order, with ancestral noise."""
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        sigma_down, sigma_up = ancestral_step(sigmas[i].item(), sigmas[i + 1].item(), eta)
        _notify(callback, i, x, denoised)
        if sigma_down == 0:
            x = x + to_d(x, sigmas[i], denoised) * (sigma_down - sigmas[i])
        else:
            t, t_next = _t(sigmas[i]), _t(sigma_down)
            h = t_next - t
            s = t + h / 2
            x_2 = (_sigma(s) / _sigma(t)) * x - (-h / 2).expm1() * denoised
            denoised_2 = model(x_2, _sigma(s))
            x = (_sigma(t_next) / _sigma(t)) * x - (-h).expm1() * denoised_2
        if sigmas[i + 1] > 0:
            x = x + noise(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


@torch.no_grad()
def sample_dpm_2(model, x, sigmas, callback=None, **_):
    """DPM-Solver-2 steps in sigma (k-diffusion's "DPM2", after Lu et al. 2022 and Karras et al. 2022 Alg. 2):
    an Euler half-step to the log-midpoint, then the full step with the midpoint's derivative."""
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        _notify(callback, i, x, denoised)
        d = to_d(x, sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = x + d * (sigmas[i + 1] - sigmas[i])
        else:
            sigma_mid = sigmas[i].log().lerp(sigmas[i + 1].log(), 0.5).exp()
            x_2 = x + d * (sigma_mid - sigmas[i])
            x = x + to_d(x_2, sigma_mid, model(x_2, sigma_mid)) * (sigmas[i + 1] - sigmas[i])
    return x


@torch.no_grad()
def sample_dpm_2_ancestral(model, x, sigmas, noise, callback=None, eta=1.0, s_noise=1.0, **_):
    """DPM2 steps to sigma_down, then fresh noise of sigma_up ("DPM2 a")."""
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        sigma_down, sigma_up = ancestral_step(sigmas[i].item(), sigmas[i + 1].item(), eta)
        _notify(callback, i, x, denoised)
        d = to_d(x, sigmas[i], denoised)
        if sigma_down == 0:
            x = x + d * (sigma_down - sigmas[i])
        else:
            sigma_down = torch.as_tensor(sigma_down, dtype=sigmas.dtype, device=sigmas.device)
            sigma_mid = sigmas[i].log().lerp(sigma_down.log(), 0.5).exp()
            x_2 = x + d * (sigma_mid - sigmas[i])
            x = x + to_d(x_2, sigma_mid, model(x_2, sigma_mid)) * (sigma_down - sigmas[i])
            x = x + noise(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


@torch.no_grad()
def sample_dpmpp_3m_sde(model, x, sigmas, noise, callback=None, eta=1.0, s_noise=1.0, **_):
    """DPM-Solver++(3M) SDE: third-order multistep in data prediction over the last three x_0 estimates,
    with noise injected each step (k-diffusion's form)."""
    denoised_1, denoised_2, h_1, h_2 = None, None, None, None
    h = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        _notify(callback, i, x, denoised)
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            h = _t(sigmas[i + 1]) - _t(sigmas[i])
            h_eta = h * (eta + 1)
            x = torch.exp(-h_eta) * x + (-h_eta).expm1().neg() * denoised
            phi_2 = h_eta.neg().expm1() / h_eta + 1
            if h_2 is not None:
                r0, r1 = h_1 / h, h_2 / h
                d1_0, d1_1 = (denoised - denoised_1) / r0, (denoised_1 - denoised_2) / r1
                d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                x = x + phi_2 * d1 - (phi_2 / h_eta - 0.5) * d2
            elif h_1 is not None:
                x = x + phi_2 * (denoised - denoised_1) / (h_1 / h)
            if eta:
                x = x + noise(sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * (-2 * h * eta).expm1().neg().sqrt() * s_noise
        denoised_1, denoised_2 = denoised, denoised_1
        h_1, h_2 = h, h_1
    return x

