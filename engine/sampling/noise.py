"""All randomness of a generation, from explicit per-image generators.

Image i of a batch owns a CPU generator seeded with its seed: its first draw is the initial latent
noise, `torch.randn((1, 4, H/8, W/8), generator=Generator("cpu").manual_seed(seed))` as A1111's CPU
RNG and diffusers make it; later draws feed ancestral samplers. SDE samplers use a Brownian tree per
image (seeded the same way), so their result does not depend on the batch size.
"""
import warnings

import torch
import torchsde


def slerp(t: float, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of two noise tensors (C, H, W), as A1111's variation seed does it."""
    low_norm = low / torch.norm(low, dim=1, keepdim=True)
    high_norm = high / torch.norm(high, dim=1, keepdim=True)
    dot = (low_norm * high_norm).sum(1)
    if dot.mean() > 0.9995:
        return low * t + high * (1 - t)
    omega = torch.acos(dot)
    so = torch.sin(omega)
    return (torch.sin((1.0 - t) * omega) / so).unsqueeze(1) * low + (torch.sin(t * omega) / so).unsqueeze(1) * high


class ImageNoise:
    """Per-image seeded noise: `initial()` once, then `__call__(sigma, sigma_next)` for ancestral steps."""

    def __init__(self, shape: tuple[int, int, int], seeds: list[int], subseeds: list[int] | None = None,
                 subseed_strength: float = 0.0, device: torch.device | str = "cpu", seed_delta: int = 0):
        """`seed_delta`: A1111's eta noise seed delta (ENSD): after the initial noise, the ancestral draws come
        from generators seeded with seed + delta."""
        self.shape = tuple(shape)
        self.seeds = list(seeds)
        self.subseeds = subseeds
        self.subseed_strength = subseed_strength
        self.device = torch.device(device)
        self.seed_delta = int(seed_delta)
        self.generators = [torch.Generator("cpu").manual_seed(int(s)) for s in self.seeds]

    def initial(self) -> torch.Tensor:
        xs = []
        for i, generator in enumerate(self.generators):
            x = torch.randn((1, *self.shape), generator=generator)[0]
            if self.subseeds is not None and self.subseed_strength:
                sub = torch.randn((1, *self.shape), generator=torch.Generator("cpu").manual_seed(int(self.subseeds[i])))[0]
                x = slerp(self.subseed_strength, x, sub)
            xs.append(x)
        if self.seed_delta:
            self.generators = [torch.Generator("cpu").manual_seed(int(s) + self.seed_delta) for s in self.seeds]
        return torch.stack(xs).to(self.device)

    def __call__(self, sigma=None, sigma_next=None) -> torch.Tensor:
        return torch.stack([torch.randn(self.shape, generator=g) for g in self.generators]).to(self.device)


class BrownianNoise:
    """Increments of one Brownian motion per image over sigma (k-diffusion's BrownianTreeNoiseSampler)."""

    def __init__(self, x: torch.Tensor, sigma_min: float, sigma_max: float, seeds: list[int]):
        self.t0, self.t1 = float(sigma_min), float(sigma_max)
        w0 = torch.zeros_like(x[0], dtype=torch.float32, device="cpu")
        self.trees = [torchsde.BrownianTree(torch.tensor(self.t0), w0, torch.tensor(self.t1), entropy=int(s))
                      for s in seeds]
        self.device, self.dtype = x.device, x.dtype

    def __call__(self, sigma, sigma_next) -> torch.Tensor:
        a, b = float(sigma), float(sigma_next)
        lo, hi, sign = (a, b, 1.0) if a < b else (b, a, -1.0)
        with warnings.catch_warnings():   # torchsde warns when a float32 query equals an end point
            warnings.simplefilter("ignore", UserWarning)
            w = torch.stack([tree(torch.tensor(lo), torch.tensor(hi)) for tree in self.trees]) * sign
        return (w / abs(b - a) ** 0.5).to(self.device, self.dtype)
