"""TAESD: a tiny autoencoder that shares a latent diffusion model's latent space (Bohan, madebyollin/taesd, 2023).

Plain 3x3 convolutions and ReLUs, no normalisation or attention: about 1 M parameters each way against the
full VAE's 50 M, so a 512x512 decode costs a few percent of the full one. It reads and writes the *scaled*
latents the UNet sees (z * scaling_factor), so no scaling sits between sampler and decoder.

Module and parameter names follow diffusers' `AutoencoderTiny` (encoder.layers.N, decoder.layers.N, each block's
conv.0/2/4, skip, fuse); the original files' bare `N.` keys are mapped by the loader.
"""
from dataclasses import dataclass, fields

import torch
from torch import nn


@dataclass(frozen=True)
class TinyVAEConfig:
    in_channels: int = 3
    out_channels: int = 3
    latent_channels: int = 4
    encoder_block_out_channels: tuple[int, ...] = (64, 64, 64, 64)
    decoder_block_out_channels: tuple[int, ...] = (64, 64, 64, 64)
    num_encoder_blocks: tuple[int, ...] = (1, 3, 3, 3)
    num_decoder_blocks: tuple[int, ...] = (3, 3, 3, 1)
    latent_magnitude: float = 3.0        # the decoder soft-clamps its input to +-3 (tanh)

    @classmethod
    def from_dict(cls, config: dict) -> "TinyVAEConfig":
        known = {f.name for f in fields(cls)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items() if k in known}
        return cls(**values)

    @property
    def downscale(self) -> int:
        """Pixels per latent side: one factor of 2 between neighbouring stages."""
        return 2 ** (len(self.decoder_block_out_channels) - 1)


def _conv(c_in: int, c_out: int, **kwargs) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, padding=1, **kwargs)


class TinyBlock(nn.Module):
    """relu(conv(relu(conv(relu(conv(x))))) + skip(x))."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Sequential(_conv(c_in, c_out), nn.ReLU(), _conv(c_out, c_out), nn.ReLU(), _conv(c_out, c_out))
        self.skip = nn.Conv2d(c_in, c_out, 1, bias=False) if c_in != c_out else nn.Identity()
        self.fuse = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(self.conv(x) + self.skip(x))


class TinyEncoder(nn.Module):
    """Pixels in [0, 1] -> latents: a stride-2 convolution and its blocks per stage after the first."""

    def __init__(self, config: TinyVAEConfig):
        super().__init__()
        widths, layers = config.encoder_block_out_channels, []
        for i, blocks in enumerate(config.num_encoder_blocks):
            layers.append(_conv(config.in_channels, widths[0]) if i == 0
                          else _conv(widths[i - 1], widths[i], stride=2, bias=False))
            layers += [TinyBlock(widths[i], widths[i]) for _ in range(blocks)]
        layers.append(_conv(widths[-1], config.latent_channels))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class TinyDecoder(nn.Module):
    """Latents -> pixels in [0, 1]: per stage its blocks, a 2x nearest upsample and a convolution."""

    def __init__(self, config: TinyVAEConfig):
        super().__init__()
        widths, last = config.decoder_block_out_channels, len(config.num_decoder_blocks) - 1
        layers = [_conv(config.latent_channels, widths[0]), nn.ReLU()]
        for i, blocks in enumerate(config.num_decoder_blocks):
            layers += [TinyBlock(widths[i], widths[i]) for _ in range(blocks)]
            if i < last:
                layers += [nn.Upsample(scale_factor=2, mode="nearest"), _conv(widths[i], widths[i + 1], bias=False)]
            else:
                layers.append(_conv(widths[i], config.out_channels))
        self.layers = nn.Sequential(*layers)
        self.magnitude = config.latent_magnitude

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.layers(torch.tanh(z / self.magnitude) * self.magnitude)


class TinyAutoencoder(nn.Module):
    """TAESD. `decode`: scaled latents -> pixels in [-1, 1]; `encode`: pixels in [-1, 1] -> scaled latents.
    Either half may be absent (A1111 ships decoder and encoder as separate files)."""

    def __init__(self, config: TinyVAEConfig, encoder: bool = True, decoder: bool = True):
        super().__init__()
        self.config = config
        self.encoder = TinyEncoder(config) if encoder else None
        self.decoder = TinyDecoder(config) if decoder else None

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.decoder(latents) * 2 - 1

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.encoder((pixels + 1) / 2)
