"""The denoising UNet of latent diffusion (Rombach et al. 2022) for the SD1.x / SD2.x and SDXL families.

Built from a diffusers `UNet2DConditionModel` config so that its weights load with strict=True.
ControlNet enters as explicit residual lists (Zhang et al. 2023): one tensor per skip connection
plus one for the middle block.

SDXL (Podell et al. 2023) is the same UNet with other config values: transformer depths per block
(1, 2, 10 for the base; 4 for the refiner), linear projections, no attention at the first level, and
"micro-conditioning": the pooled text embedding and the Fourier-embedded size/crop/target (or aesthetic
score) ids, concatenated and mapped by `add_embedding` into a vector added to the time embedding
(`addition_embed_type="text_time"`, Sec. 2.2).
"""
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UnsupportedArchitectureError
from .attention import Transformer2DModel
from .conv import Conv2d
from .deep_cache import CacheSlot
from .layers import Downsample2D, ResnetBlock2D, TimestepEmbedding, Upsample2D, timestep_embedding

CROSS_DOWN, PLAIN_DOWN = "CrossAttnDownBlock2D", "DownBlock2D"
CROSS_UP, PLAIN_UP = "CrossAttnUpBlock2D", "UpBlock2D"

# config keys of other families: a set value means a model this UNet does not implement
_FOREIGN_KEYS = ("class_embed_type", "encoder_hid_dim", "num_class_embeds")
Depths = int | tuple[int, ...]


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
    transformer_layers_per_block: Depths = 1                 # per down block (and mid: the last one)
    reverse_transformer_layers_per_block: tuple[Depths, ...] | None = None   # per up block; default: reversed
    addition_embed_type: str | None = None                   # "text_time": SDXL's micro-conditioning
    addition_time_embed_dim: int | None = None               # Fourier features per size/crop id (256)
    projection_class_embeddings_input_dim: int | None = None  # pooled text + 256 x ids (2816 base, 2560 refiner)
    norm_num_groups: int = 32
    norm_eps: float = 1e-5
    flip_sin_to_cos: bool = True
    freq_shift: int = 0
    sample_size: int = 64

    @classmethod
    def from_dict(cls, config: dict) -> "UNetConfig":
        for key in _FOREIGN_KEYS:
            if config.get(key) is not None:
                raise UnsupportedArchitectureError(f"UNet config sets {key}={config[key]!r}: not a UNet this "
                                                   "engine implements")
        if config.get("addition_embed_type") not in (None, "text_time"):
            raise UnsupportedArchitectureError(f"addition_embed_type {config['addition_embed_type']!r} is not "
                                               "supported (SDXL's is text_time)")
        if config.get("mid_block_type", "UNetMidBlock2DCrossAttn") != "UNetMidBlock2DCrossAttn":
            raise UnsupportedArchitectureError(f"mid block {config['mid_block_type']} is not supported")
        known = {f.name for f in fields(cls)}
        values = {k: _tuples(v) for k, v in config.items() if k in known}
        return cls(**values)

    @property
    def is_sdxl(self) -> bool:
        return self.addition_embed_type == "text_time"

    def depths_down(self) -> tuple[int, ...]:
        depths = self.transformer_layers_per_block
        return (depths,) * len(self.block_out_channels) if isinstance(depths, int) else tuple(depths)

    def depths_up(self) -> tuple[Depths, ...]:
        """Each up block's transformer depth: one for all its layers, or one per layer."""
        return tuple(self.reverse_transformer_layers_per_block or self.depths_down()[::-1])

    def heads_per_block(self) -> tuple[int, ...]:
        heads = self.num_attention_heads or self.attention_head_dim
        if isinstance(heads, int):
            heads = (heads,) * len(self.block_out_channels)
        return tuple(heads)


def _tuples(value):
    """JSON lists -> tuples, nested ones too (reverse_transformer_layers_per_block may hold lists)."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def _transformer(ch: int, heads: int, depth: int, cfg: UNetConfig) -> Transformer2DModel:
    return Transformer2DModel(ch, heads, cfg.cross_attention_dim, depth, cfg.use_linear_projection,
                              cfg.upcast_attention, cfg.norm_num_groups)


class DownBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, temb_ch: int, layers: int, downsample: bool,
                 heads: int | None, depth: int, cfg: UNetConfig):
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlock2D(in_ch if i == 0 else out_ch, out_ch, temb_ch, cfg.norm_num_groups, cfg.norm_eps)
            for i in range(layers))
        if heads:
            self.attentions = nn.ModuleList(_transformer(out_ch, heads, depth, cfg) for _ in range(layers))
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
                 heads: int | None, depth: Depths, cfg: UNetConfig):
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlock2D((in_ch if i == 0 else out_ch) + s, out_ch, temb_ch, cfg.norm_num_groups, cfg.norm_eps)
            for i, s in enumerate(skip_ch))
        if heads:
            depths = (depth,) * len(skip_ch) if isinstance(depth, int) else depth
            self.attentions = nn.ModuleList(_transformer(out_ch, heads, d, cfg) for d in depths)
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
    def __init__(self, ch: int, temb_ch: int, heads: int, depth: int, cfg: UNetConfig):
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlock2D(ch, ch, temb_ch, cfg.norm_num_groups, cfg.norm_eps) for _ in range(2))
        self.attentions = nn.ModuleList([_transformer(ch, heads, depth, cfg)])

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
        if config.is_sdxl:    # y = [pooled text, Fourier(ids)] -> a vector added to the time embedding
            self.add_embedding = TimestepEmbedding(config.projection_class_embeddings_input_dim, temb_ch)
        depths_down, depths_up = config.depths_down(), config.depths_up()

        self.down_blocks = nn.ModuleList()
        skip_channels = [channels[0]]
        for i, kind in enumerate(config.down_block_types):
            in_ch = channels[max(i - 1, 0)]
            last = i == n_blocks - 1
            self.down_blocks.append(DownBlock(in_ch, channels[i], temb_ch, layers, not last,
                                              heads[i] if kind == CROSS_DOWN else None, depths_down[i], config))
            skip_channels += [channels[i]] * (layers + (0 if last else 1))

        self.mid_block = MidBlock(channels[-1], temb_ch, heads[-1], depths_down[-1], config)

        self.up_blocks = nn.ModuleList()
        rev_channels, rev_heads = channels[::-1], heads[::-1]
        prev_ch = channels[-1]
        for i, kind in enumerate(config.up_block_types):
            block_skips = [skip_channels.pop() for _ in range(layers + 1)]
            last = i == n_blocks - 1
            self.up_blocks.append(UpBlock(prev_ch, rev_channels[i], block_skips, temb_ch, not last,
                                          rev_heads[i] if kind == CROSS_UP else None, depths_up[i], config))
            prev_ch = rev_channels[i]

        self.conv_norm_out = nn.GroupNorm(config.norm_num_groups, channels[0], eps=config.norm_eps)
        self.conv_out = Conv2d(channels[0], config.out_channels, 3, padding=1)

    @property
    def dtype(self) -> torch.dtype:
        return self.conv_in.weight.dtype

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor | float, encoder_hidden_states: torch.Tensor,
                timestep_cond: torch.Tensor | None = None,
                down_block_additional_residuals: list[torch.Tensor] | None = None,
                mid_block_additional_residual: torch.Tensor | None = None,
                text_embeds: torch.Tensor | None = None, time_ids: torch.Tensor | None = None,
                cache: CacheSlot | None = None) -> torch.Tensor:
        """`text_embeds` (B, 1280) and `time_ids` (B, 6: original h, w, crop top, left, target h, w; or 5 with
        the aesthetic score for the refiner) are SDXL's micro-conditioning, as diffusers' added_cond_kwargs.
        `cache`: DeepCache's slot (engine.models.deep_cache); a reusable one skips all but the outermost blocks."""
        cfg = self.config
        temb = conditioned_time_embedding(self, cfg, sample, timestep, timestep_cond, text_embeds, time_ids)
        context = encoder_hidden_states
        n = cfg.layers_per_block + 1
        shallow = cache is not None and cache.reusable(sample.shape[0])

        x = self.conv_in(sample)
        skips = [x]
        for block in self.down_blocks[:1] if shallow else self.down_blocks:
            x, block_skips = block(x, temb, context)
            skips += block_skips
        if down_block_additional_residuals is not None:
            skips = [s + r for s, r in zip(skips, down_block_additional_residuals, strict=not shallow)]

        if shallow:                     # the deep features of the last full pass, then only the last up block
            return self._up(cache.feature, skips[:n], self.up_blocks[-1:], temb, context)
        x = self.mid_block(x, temb, context)
        if mid_block_additional_residual is not None:
            x = x + mid_block_additional_residual
        return self._up(x, skips, self.up_blocks, temb, context, cache)

    def _up(self, x, skips, blocks, temb, context, cache: CacheSlot | None = None) -> torch.Tensor:
        n = self.config.layers_per_block + 1
        for block in blocks:
            if cache is not None and block is self.up_blocks[-1]:
                cache.feature = x
            block_skips, skips = skips[-n:], skips[:-n]
            next_size = skips[-1].shape[-2:] if skips else None  # matches odd latent sizes exactly
            x = block(x, block_skips, temb, context, next_size)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


def conditioned_time_embedding(model: nn.Module, cfg: UNetConfig, sample: torch.Tensor, timestep, timestep_cond,
                               text_embeds, time_ids) -> torch.Tensor:
    """The vector every ResNet block receives: the timestep's (with LCM's guidance embedding, if any), plus for
    SDXL add_embedding(y), y = [pooled text, Fourier features of each id] (SDXL Sec. 2.2). `model` holds the
    time_embedding and add_embedding modules (the UNet, or a ControlNet's copy of its encoder)."""
    timesteps = torch.as_tensor(timestep, device=sample.device).reshape(-1).expand(sample.shape[0])
    t_emb = timestep_embedding(timesteps, cfg.block_out_channels[0], cfg.flip_sin_to_cos, cfg.freq_shift)
    cond = None if timestep_cond is None else timestep_cond.to(sample.dtype)
    temb = model.time_embedding(t_emb.to(sample.dtype), cond)
    if not cfg.is_sdxl:
        return temb
    if text_embeds is None or time_ids is None:
        raise ValueError("an SDXL model needs text_embeds (the pooled prompt) and time_ids")
    b, n = time_ids.shape
    ids = timestep_embedding(time_ids.reshape(-1), cfg.addition_time_embed_dim, cfg.flip_sin_to_cos,
                             cfg.freq_shift).reshape(b, n * cfg.addition_time_embed_dim)
    y = torch.cat([text_embeds.float(), ids], dim=-1)
    return temb + model.add_embedding(y.to(sample.dtype))
