"""UniPC (Zhao et al. 2023): a unified predictor-corrector multistep solver, data prediction, B(h) variants.

Written over sigmas with lambda = -log(sigma). Predictor (UniP, Alg. 2) and corrector (UniC, Alg. 1):
  x_t = (sigma_t / sigma_s) x_s - h phi_1(h) m_0 - B(h) sum_k rho_k D_k,   D_k = (m_k - m_0) / r_k,
B(h) = -h (bh1) or e^-h - 1 (bh2); rho solves R rho = b built from phi_k(h). The corrector reuses the
model output at the predicted point, so it costs no extra evaluation.
"""
import math

import torch


def _coefficients(rks: list[float], h: float, order: int, variant: str):
    """phi-function right-hand side b and Vandermonde-like R of the UniPC linear system."""
    hh = -h
    h_phi_1 = math.expm1(hh)
    h_phi_k = h_phi_1 / hh - 1
    b_h = hh if variant == "bh1" else math.expm1(hh)
    rks = torch.tensor(rks + [1.0], dtype=torch.float64)
    R, b, factorial = [], [], 1
    for k in range(1, order + 1):
        R.append(rks ** (k - 1))
        b.append(h_phi_k * factorial / b_h)
        factorial *= k + 1
        h_phi_k = h_phi_k / hh - 1 / factorial
    return h_phi_1, b_h, torch.stack(R), torch.tensor(b, dtype=torch.float64)


def unipc_update(x, ms, sigs, sigma_next, order, variant, model_t=None):
    """One UniP step from (ms[-1] at sigs[-1]) to sigma_next, or the UniC correction when model_t is given."""
    lam = lambda s: -math.log(float(s))  # noqa: E731
    m0, sigma_s = ms[-1], float(sigs[-1])
    if model_t is None and float(sigma_next) == 0:
        return m0   # the first-order step to sigma = 0 lands on the data prediction
    h = lam(sigma_next) - lam(sigma_s)
    rks = [(lam(sigs[-(k + 1)]) - lam(sigma_s)) / h for k in range(1, order)]
    d1s = [(ms[-(k + 1)] - m0) / rk for k, rk in zip(range(1, order), rks)]
    h_phi_1, b_h, R, b = _coefficients(rks, h, order, variant)
    x_base = (float(sigma_next) / sigma_s) * x - h_phi_1 * m0
    if model_t is None:
        if not d1s:
            return x_base
        rhos = [0.5] if order == 2 else torch.linalg.solve(R[:-1, :-1], b[:-1]).tolist()
        return x_base - b_h * sum(r * d for r, d in zip(rhos, d1s))
    rhos = [0.5] if order == 1 else torch.linalg.solve(R, b).tolist()
    correction = sum((r * d for r, d in zip(rhos[:-1], d1s)), torch.zeros_like(x))
    return x_base - b_h * (correction + rhos[-1] * (model_t - m0))


@torch.no_grad()
def sample_unipc(model, x, sigmas, callback=None, order=3, variant="bh1", lower_order_final=True, **_):
    """Multistep UniPC; A1111's defaults are order 3 and variant bh1."""
    if variant not in ("bh1", "bh2"):
        raise ValueError(f"UniPC variant must be bh1 or bh2, not {variant!r}")
    ms, sigs = [], []
    x_last, last_order = None, 0
    steps = len(sigmas) - 1
    for i in range(steps):
        m = model(x, sigmas[i])
        if callback is not None:
            callback(i, x, m)
        if x_last is not None:
            x = unipc_update(x_last, ms, sigs, sigmas[i], last_order, variant, model_t=m)
        ms, sigs = (ms + [m])[-order:], (sigs + [sigmas[i]])[-order:]
        this_order = min(order, steps - i) if lower_order_final else order
        this_order = min(this_order, i + 1)
        x_last, last_order = x, this_order
        x = unipc_update(x, ms, sigs, sigmas[i + 1], this_order, variant)
    return x
