"""The denoising UNet of latent diffusion (Rombach et al. 2022) for the SD1.x / SD2.x family.

Built from a diffusers `UNet2DConditionModel` config so that its weights load with strict=True.
ControlNet enters as explicit residual lists (Zhang et al. 2023): one tensor per skip connection
plus one for the middle block.
"""
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UnsupportedArchitectureError
from .attention import Transformer2DModel
from .conv import Conv2d
from .layers import Downsample2D, ResnetBlock2D, TimestepEmbedding, Upsample2D, timestep_embedding

CROSS_DOWN, PLAIN_DOWN = "CrossAttnDownBlock2D", "DownBlock2D"
CROSS_UP, PLAIN_UP = "CrossAttnUpBlock2D", "UpBlock2D"

# config keys of other families: a set value means a model this UNet does not implement
_FOREIGN_KEYS = ("addition_embed_type", "class_embed_type", "encoder_hid_dim", "num_class_embeds",
                 "projection_class_embeddings_input_dim")


@dataclass(frozen=True)
class UNetConfig:
    in_channels: int = 4
    out_channels: int = 4
    block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280)
    down_block_types: tuple[str, ...] = (CROSS_DOWN, CROSS_DOWN, CROSS_DOWN, PLAIN_DOWN)
    up_block_types: tuple[str, ...] = (PLAIN_UP, CROSS_UP, CROSS_UP, CROSS_UP)
    layers_per_block: int = 2
    attention_head_dim: int | tuple[int, ...] = 8   # diffusers' legacy name: it holds the number of heads
    num_attention_heads: int | tuple[int, ...] | None = None
    cross_attention_dim: int = 768
    use_linear_projection: bool = False
    upcast_attention: bool = False
    time_cond_proj_dim: int | None = None
    transformer_layers_per_block: int = 1
    norm_num_groups: int = 32
    norm_eps: float = 1e-5
    flip_sin_to_cos: bool = True
    freq_shift: int = 0
    sample_size: int = 64

    @classmethod
    def from_dict(cls, config: dict) -> "UNetConfig":
        for key in _FOREIGN_KEYS:
            if config.get(key) is not None:
                raise UnsupportedArchitectureError(
                    f"UNet config sets {key}={config[key]!r}: that is an SDXL-style UNet, not supported yet")
        if config.get("mid_block_type", "UNetMidBlock2DCrossAttn") != "UNetMidBlock2DCrossAttn":
            raise UnsupportedArchitectureError(f"mid block {config['mid_block_type']} is not supported")
        if not isinstance(config.get("transformer_layers_per_block", 1), int):
            raise UnsupportedArchitectureError("per-block transformer depths (SDXL) are not supported yet")
        known = {f.name for f in fields(cls)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items() if k in known}
        return cls(**values)

    def heads_per_block(self) -> tuple[int, ...]:
        heads = self.num_attention_heads or self.attention_head_dim
        if isinstance(heads, int):
            heads = (heads,) * len(self.block_out_channels)
        return tuple(heads)


class DownBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, temb_ch: int, layers: int, downsample: bool,
                 heads: int | None, cfg: UNetConfig):
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlock2D(in_ch if i == 0 else out_ch, out_ch, temb_ch, cfg.norm_num_groups, cfg.norm_eps)
            for i in range(layers))
        if heads:
            self.attentions = nn.ModuleList(
                Transformer2DModel(out_ch, heads, cfg.cross_attention_dim, cfg.transformer_layers_per_block,
                                   cfg.use_linear_projection, cfg.upcast_attention, cfg.norm_num_groups)
                for _ in range(layers))
        else:
            self.attentions = None
        self.downsamplers = nn.ModuleList([Downsample2D(out_ch)]) if downsample else None

    def forward(self, x, temb, context):
        skips = []
        for i, resnet in enumerate(self.resnets):
            x = resnet(x, temb)
            if self.attentions is not None:
                x = self.attentions[i](x, context)
            skips.append(x)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
            skips.append(x)
        return x, skips


class UpBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, skip_ch: list[int], temb_ch: int, upsample: bool,
                 heads: int | None, cfg: UNetConfig):
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlock2D((in_ch if i == 0 else out_ch) + s, out_ch, temb_ch, cfg.norm_num_groups, cfg.norm_eps)
            for i, s in enumerate(skip_ch))
        if heads:
            self.attentions = nn.ModuleList(
                Transformer2DModel(out_ch, heads, cfg.cross_attention_dim, cfg.transformer_layers_per_block,
                                   cfg.use_linear_projection, cfg.upcast_attention, cfg.norm_num_groups)
                for _ in skip_ch)
        else:
            self.attentions = None
        self.upsamplers = nn.ModuleList([Upsample2D(out_ch)]) if upsample else None

    def forward(self, x, skips, temb, context, upsample_size=None):
        for i, resnet in enumerate(self.resnets):
            x = resnet(torch.cat([x, skips.pop()], dim=1), temb)
            if self.attentions is not None:
                x = self.attentions[i](x, context)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x, upsample_size)
        return x


class MidBlock(nn.Module):
    def __init__(self, ch: int, temb_ch: int, heads: int, cfg: UNetConfig):
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlock2D(ch, ch, temb_ch, cfg.norm_num_groups, cfg.norm_eps) for _ in range(2))
        self.attentions = nn.ModuleList([
            Transformer2DModel(ch, heads, cfg.cross_attention_dim, cfg.transformer_layers_per_block,
                               cfg.use_linear_projection, cfg.upcast_attention, cfg.norm_num_groups)])

    def forward(self, x, temb, context):
        x = self.resnets[0](x, temb)
        x = self.attentions[0](x, context)
        return self.resnets[1](x, temb)


class UNet2DConditionModel(nn.Module):
    """eps_theta(z_t, t, c): predicts the noise (or v) in latent z_t at timestep t, given text context c."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        channels = config.block_out_channels
        heads = config.heads_per_block()
        temb_ch = channels[0] * 4
        n_blocks = len(channels)
        layers = config.layers_per_block

        self.conv_in = Conv2d(config.in_channels, channels[0], 3, padding=1)
        self.time_embedding = TimestepEmbedding(channels[0], temb_ch, config.time_cond_proj_dim)

        self.down_blocks = nn.ModuleList()
        skip_channels = [channels[0]]
        for i, kind in enumerate(config.down_block_types):
            in_ch = channels[max(i - 1, 0)]
            last = i == n_blocks - 1
            self.down_blocks.append(DownBlock(in_ch, channels[i], temb_ch, layers, not last,
                                              heads[i] if kind == CROSS_DOWN else None, config))
            skip_channels += [channels[i]] * (layers + (0 if last else 1))

        self.mid_block = MidBlock(channels[-1], temb_ch, heads[-1], config)

        self.up_blocks = nn.ModuleList()
        rev_channels, rev_heads = channels[::-1], heads[::-1]
        prev_ch = channels[-1]
        for i, kind in enumerate(config.up_block_types):
            block_skips = [skip_channels.pop() for _ in range(layers + 1)]
            last = i == n_blocks - 1
            self.up_blocks.append(UpBlock(prev_ch, rev_channels[i], block_skips, temb_ch, not last,
                                          rev_heads[i] if kind == CROSS_UP else None, config))
            prev_ch = rev_channels[i]

        self.conv_norm_out = nn.GroupNorm(config.norm_num_groups, channels[0], eps=config.norm_eps)
        self.conv_out = Conv2d(channels[0], config.out_channels, 3, padding=1)

    @property
    def dtype(self) -> torch.dtype:
        return self.conv_in.weight.dtype

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor | float, encoder_hidden_states: torch.Tensor,
                timestep_cond: torch.Tensor | None = None,
                down_block_additional_residuals: list[torch.Tensor] | None = None,
                mid_block_additional_residual: torch.Tensor | None = None) -> torch.Tensor:
        cfg = self.config
        timesteps = torch.as_tensor(timestep, device=sample.device).reshape(-1).expand(sample.shape[0])
        t_emb = timestep_embedding(timesteps, cfg.block_out_channels[0], cfg.flip_sin_to_cos, cfg.freq_shift)
        cond = None if timestep_cond is None else timestep_cond.to(sample.dtype)
        temb = self.time_embedding(t_emb.to(sample.dtype), cond)
        context = encoder_hidden_states

        x = self.conv_in(sample)
        skips = [x]
        for block in self.down_blocks:
            x, block_skips = block(x, temb, context)
            skips += block_skips
        if down_block_additional_residuals is not None:
            skips = [s + r for s, r in zip(skips, down_block_additional_residuals, strict=True)]

        x = self.mid_block(x, temb, context)
        if mid_block_additional_residual is not None:
            x = x + mid_block_additional_residual

        n = cfg.layers_per_block + 1
        for block in self.up_blocks:
            block_skips, skips = skips[-n:], skips[:-n]
            next_size = skips[-1].shape[-2:] if skips else None  # matches odd latent sizes exactly
            x = block(x, block_skips, temb, context, next_size)

        return self.conv_out(F.silu(self.conv_norm_out(x)))
