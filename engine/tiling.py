"""Seamless tiling (A1111's "Tiling"): every padded convolution of the UNet and the VAE pads circularly, so the
picture wraps around at its edges and repeats without a seam, as a texture."""
import contextlib

from torch import nn


@contextlib.contextmanager
def seamless(modules: list[nn.Module], enabled: bool = True):
    """Within the block, the padded convolutions of `modules` wrap around; restored afterwards."""
    changed = []
    if enabled:
        for module in modules:
            for layer in module.modules():
                if isinstance(layer, nn.Conv2d) and layer.padding_mode == "zeros" and any(layer.padding):
                    layer.padding_mode = "circular"
                    changed.append(layer)
    try:
        yield
    finally:
        for layer in changed:
            layer.padding_mode = "zeros"
