"""k-diffusion's sampling code (what A1111 runs), imported without its package __init__, which pulls in
training and evaluation dependencies the references do not need."""
import importlib.util
import sys
import types

import torch


def import_k_diffusion():
    if "k_diffusion.sampling" not in sys.modules:
        spec = importlib.util.find_spec("k_diffusion")
        package = types.ModuleType("k_diffusion")
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules["k_diffusion"] = package
    import k_diffusion.external
    import k_diffusion.sampling
    return k_diffusion.sampling, k_diffusion.external


class LatentDiffusionShim(torch.nn.Module):
    """The two attributes of a CompVis LatentDiffusion that k-diffusion's CompVisDenoiser reads."""

    def __init__(self, unet, alphas_cumprod):
        super().__init__()
        self.unet = unet
        self.register_buffer("alphas_cumprod", alphas_cumprod.float())

    def apply_model(self, x, t, cond):
        return self.unet(x, t, cond).sample
