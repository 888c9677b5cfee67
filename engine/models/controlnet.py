"""ControlNet (Zhang, Rao & Agrawala 2023): a trainable copy of the UNet's encoder that reads a control map.

The control image c_f (pixels in [0, 1]) goes through a small conditioning embedding to latent size and is
added after conv_in; the encoder copy then runs as the UNet's does, and each of its skip features and the
middle block's output pass through a zero-initialised 1x1 convolution. These 13 tensors (for SD1.x; 10 for
SDXL's three levels) are the residuals the UNet adds to its skip connections and middle block. diffusers' `ControlNetModel`
parameter names, so its folders and converted original files load with strict=True.
"""
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from .conv import Conv2d
from .layers import TimestepEmbedding
from .unet import CROSS_DOWN, DownBlock, MidBlock, UNetConfig, conditioned_time_embedding


@dataclass(frozen=True)
class ControlNetConfig:
    unet: UNetConfig
    conditioning_channels: int = 3
    conditioning_embedding_out_channels: tuple[int, ...] = (16, 32, 96, 256)
    global_pool_conditions: bool = False      # the shuffle model: residuals averaged over space
    controlnet_conditioning_channel_order: str = "rgb"

    @classmethod
    def from_dict(cls, config: dict) -> "ControlNetConfig":
        own = {f.name for f in fields(cls)} - {"unet"}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items() if k in own}
        unet = dict(config, up_block_types=config.get("up_block_types", ()))
        return cls(UNetConfig.from_dict(unet), **values)


class ControlNetConditioningEmbedding(nn.Module):
    """Control image -> latent-size features: 3x3 convolutions with SiLU, three stride-2 steps, a zero conv out."""

    def __init__(self, out_channels: int, conditioning_channels: int, channels: tuple[int, ...]):
        super().__init__()
        self.conv_in = Conv2d(conditioning_channels, channels[0], 3, padding=1)
        self.blocks = nn.ModuleList()
        for c_in, c_out in zip(channels[:-1], channels[1:]):
            self.blocks.append(Conv2d(c_in, c_in, 3, padding=1))
            self.blocks.append(Conv2d(c_in, c_out, 3, padding=1, stride=2))
        self.conv_out = Conv2d(channels[-1], out_channels, 3, padding=1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = F.silu(self.conv_in(image))
        for block in self.blocks:
            x = F.silu(block(x))
        return self.conv_out(x)


class ControlNetModel(nn.Module):
    def __init__(self, config: ControlNetConfig):
        super().__init__()
        self.config = config
        cfg = config.unet
        channels = cfg.block_out_channels
        heads, depths = cfg.heads_per_block(), cfg.depths_down()
        temb_ch = channels[0] * 4
        layers = cfg.layers_per_block

        self.conv_in = Conv2d(cfg.in_channels, channels[0], 3, padding=1)
        self.time_embedding = TimestepEmbedding(channels[0], temb_ch, cfg.time_cond_proj_dim)
        if cfg.is_sdxl:      # SDXL's micro-conditioning, as in the UNet
            self.add_embedding = TimestepEmbedding(cfg.projection_class_embeddings_input_dim, temb_ch)
        self.controlnet_cond_embedding = ControlNetConditioningEmbedding(
            channels[0], config.conditioning_channels, config.conditioning_embedding_out_channels)

        self.down_blocks = nn.ModuleList()
        self.controlnet_down_blocks = nn.ModuleList([Conv2d(channels[0], channels[0], 1)])
        for i, kind in enumerate(cfg.down_block_types):
            last = i == len(channels) - 1
            self.down_blocks.append(DownBlock(channels[max(i - 1, 0)], channels[i], temb_ch, layers, not last,
                                              heads[i] if kind == CROSS_DOWN else None, depths[i], cfg))
            for _ in range(layers + (0 if last else 1)):
                self.controlnet_down_blocks.append(Conv2d(channels[i], channels[i], 1))
        self.mid_block = MidBlock(channels[-1], temb_ch, heads[-1], depths[-1], cfg)
        self.controlnet_mid_block = Conv2d(channels[-1], channels[-1], 1)

    @property
    def dtype(self) -> torch.dtype:
        return self.conv_in.weight.dtype

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor | float, encoder_hidden_states: torch.Tensor,
                controlnet_cond: torch.Tensor, timestep_cond: torch.Tensor | None = None,
                text_embeds: torch.Tensor | None = None, time_ids: torch.Tensor | None = None
                ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """(down residuals, mid residual) at unit scale; the caller weights them (see engine.control).
        SDXL ControlNets take the UNet's micro-conditioning (`text_embeds`, `time_ids`) as well."""
        cfg = self.config.unet
        temb = conditioned_time_embedding(self, cfg, sample, timestep, timestep_cond, text_embeds, time_ids)
        if self.config.controlnet_conditioning_channel_order == "bgr":
            controlnet_cond = controlnet_cond.flip(1)

        x = self.conv_in(sample) + self.controlnet_cond_embedding(controlnet_cond.to(sample.dtype))
        skips = [x]
        for block in self.down_blocks:
            x, block_skips = block(x, temb, encoder_hidden_states)
            skips += block_skips
        x = self.mid_block(x, temb, encoder_hidden_states)

        down = [zero_conv(s) for zero_conv, s in zip(self.controlnet_down_blocks, skips, strict=True)]
        mid = self.controlnet_mid_block(x)
        if self.config.global_pool_conditions:
            down = [d.mean(dim=(2, 3), keepdim=True) for d in down]
            mid = mid.mean(dim=(2, 3), keepdim=True)
        return down, mid
