"""CLIP text transformer (Radford et al. 2021): the prompt encoder of Stable Diffusion.

SD1.x uses OpenAI's ViT-L/14 text tower (12 layers, width 768, quick_gelu); SD2.x uses OpenCLIP's
ViT-H tower (width 1024, gelu) with its last layer dropped, as diffusers stores it. SDXL uses ViT-L/14 and
OpenCLIP's ViT-bigG/14 (32 layers, width 1280) side by side; bigG's pooled output (the final layer norm at
the end-of-text token) goes through its `text_projection`, as transformers' CLIPTextModelWithProjection.
Parameter names follow transformers; every layer's hidden state is returned for "clip skip".
"""
from dataclasses import dataclass, fields
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {
    "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),
    "gelu": F.gelu,
}

@dataclass(frozen=True)
class CLIPTextConfig:
    vocab_size: int = 49408
    hidden_size: int = 768
    intermediate_size: int = 3072
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    max_position_embeddings: int = 77
    hidden_act: str = "quick_gelu"
    layer_norm_eps: float = 1e-5
    projection_dim: int | None = None     # set: a text_projection of the pooled output (SDXL's bigG)

    @classmethod
    def from_dict(cls, config: dict, with_projection: bool = False) -> "CLIPTextConfig":
        """`with_projection`: the model has a text projection. transformers writes a projection_dim into
        every CLIPTextConfig, used or not, so whether there is one comes from the caller (the file's
        architecture or tensors), never from that number alone."""
        config = config.get("text_config", config)
        known = {f.name for f in fields(cls)} - {"projection_dim"}
        values = {k: v for k, v in config.items() if k in known}
        if with_projection:
            values["projection_dim"] = config.get("projection_dim") or config["hidden_size"]
        return cls(**values)

class TextEncoderOutput(NamedTuple):
    last_hidden_state: torch.Tensor            # final layer, after the final layer norm
    hidden_states: tuple[torch.Tensor, ...]    # embeddings, then each layer's output (before the final norm)
    text_embeds: torch.Tensor | None = None    # the pooled, projected output (models with a text projection)

class CLIPAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, dim = x.shape
        d = dim // self.heads
        q, k, v = (p(x).view(b, n, self.heads, d).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out_proj(out.transpose(1, 2).reshape(b, n, dim))

class CLIPMLP(nn.Module):
    def __init__(self, dim: int, hidden: int, act: str):
        super().__init__()
        self.act = ACTIVATIONS[act]
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))

class CLIPEncoderLayer(nn.Module):
    def __init__(self, cfg: CLIPTextConfig):
        super().__init__()
        self.self_attn = CLIPAttention(cfg.hidden_size, cfg.num_attention_heads)
        self.layer_norm1 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.mlp = CLIPMLP(cfg.hidden_size, cfg.intermediate_size, cfg.hidden_act)
        self.layer_norm2 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, x):
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))

class CLIPEmbeddings(nn.Module):
    def __init__(self, cfg: CLIPTextConfig):
        super().__init__()
        self.token_embedding = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.position_embedding = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)

    def forward(self, input_ids, fixes=()):
        """Token plus position embeddings; `fixes` [(position, vectors (n, width))] put textual inversion
        vectors in place of n token embeddings (of the first row)."""
        tokens = self.token_embedding(input_ids)
        for position, vectors in fixes:
            tokens[0, position:position + len(vectors)] = vectors.to(tokens.dtype)
        return tokens + self.position_embedding.weight[: input_ids.shape[1]]

class CLIPEncoder(nn.Module):
    def __init__(self, cfg: CLIPTextConfig):
        super().__init__()
        self.layers = nn.ModuleList(CLIPEncoderLayer(cfg) for _ in range(cfg.num_hidden_layers))

class CLIPTextModel(nn.Module):
    def __init__(self, config: CLIPTextConfig):
        super().__init__()
        self.config = config
        self.embeddings = CLIPEmbeddings(config)
        self.encoder = CLIPEncoder(config)
        self.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        if config.projection_dim:
            self.text_projection = nn.Linear(config.hidden_size, config.projection_dim, bias=False)

    @property
    def dtype(self) -> torch.dtype:
        return self.final_layer_norm.weight.dtype

    def forward(self, input_ids: torch.Tensor, fixes=()) -> TextEncoderOutput:
        x = self.embeddings(input_ids, fixes)
        hidden_states = [x]
        for layer in self.encoder.layers:
            x = layer(x)
            hidden_states.append(x)
        last = self.final_layer_norm(x)
        pooled = None
        if self.config.projection_dim:     # at the end-of-text token: the highest id, as CLIP and OpenCLIP pool
            pooled = self.text_projection(last[torch.arange(len(last)), input_ids.argmax(dim=-1)])
        return TextEncoderOutput(last, tuple(hidden_states), pooled)

    def encode(self, input_ids: torch.Tensor, clip_skip: int = 1, final_norm: bool = True) -> torch.Tensor:
        """Prompt embeddings as A1111 takes them: layer -clip_skip, then the final layer norm (SD1.x / SD2.x).
        SDXL's embedders take the layer as it is (`final_norm=False`)."""
        return self.select(self(input_ids), clip_skip, final_norm)

    def select(self, out: TextEncoderOutput, clip_skip: int = 1, final_norm: bool = True) -> torch.Tensor:
        """Layer -clip_skip of a forward pass's output, through the final layer norm or not."""
        if clip_skip <= 1:
            return out.last_hidden_state if final_norm else out.hidden_states[-1]
        hidden = out.hidden_states[-clip_skip]
        return self.final_layer_norm(hidden) if final_norm else hidden
