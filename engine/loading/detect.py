"""What a single-file checkpoint is, and its architecture, read from its tensor names and shapes.

As ComfyUI's model detection does, nothing is assumed from the file name: channel widths, block
counts, attention levels, context width and projection kind all come from the tensors, so pruned,
fp16, EMA-only and slimmed fine-tunes load. Head counts are not visible in shapes: SD1's
convention (8 heads) or SD2's (64 channels a head) applies unless a sidecar .yaml says otherwise.
"""
import re

from ..errors import UnsupportedArchitectureError, WrongFileTypeError
from .ldm_names import CLIP_PREFIX, OPEN_CLIP_PREFIX, SGM_EMBEDDERS, UNET_PREFIX, VAE_PREFIX
from .tensor_files import TensorSource

SDXL_MARKER = UNET_PREFIX + "label_emb.0.0.weight"      # the micro-conditioning MLP (add_embedding)
# (marker key prefix, family name) of checkpoints that are not SD1.x / SD2.x / SDXL
_OTHER_FAMILIES = [
    (UNET_PREFIX + "joint_blocks.", "SD3"),
    ("model.diffusion_model.double_blocks.", "Flux"),
    ("double_blocks.", "Flux"),
    ("model.diffusion_model.x_embedder.", "a DiT-family model (SD3/PixArt)"),
]
# files that belong in another models/ folder
_OTHER_KINDS = [
    ("lora_unet_", "a LoRA: put it in models/Lora"),
    ("lora_te_", "a LoRA: put it in models/Lora"),
    ("control_model.", "a ControlNet: put it in models/ControlNet"),
    ("encoder.down.0.", "a VAE: put it in models/VAE"),
]


def check_family(source: TensorSource, name: str) -> None:
    """Raise a clear error unless the file is an SD1.x/SD2.x/SDXL-family checkpoint in LDM / SGM layout."""
    keys = list(source.keys())
    for marker, family in _OTHER_FAMILIES:
        if any(k.startswith(marker) for k in keys):
            raise UnsupportedArchitectureError(f"{name} is a {family} checkpoint: only the Stable Diffusion "
                                               f"1.x / 2.x and SDXL families are supported")
    if any(k.startswith(SGM_EMBEDDERS) for k in keys) and SDXL_MARKER not in source:
        raise UnsupportedArchitectureError(f"{name} has SGM text embedders but no SDXL UNet (label_emb): a family "
                                           "this engine does not know")
    if UNET_PREFIX + "input_blocks.0.0.weight" in source:
        return
    for marker, kind in _OTHER_KINDS:
        if any(k.startswith(marker) for k in keys):
            raise WrongFileTypeError(f"{name} is {kind}, not a Stable Diffusion checkpoint")
    raise WrongFileTypeError(f"{name} holds {len(keys)} tensors but no Stable Diffusion UNet "
                             f"(model.diffusion_model.*), e.g. {', '.join(keys[:3])}")


def _indices(source: TensorSource, pattern: str) -> list[int]:
    found = {int(m[1]) for k in source.keys() if (m := re.match(pattern, k))}
    return sorted(found)


def _transformer_depths(source, p: str, levels, has_attention) -> list[int]:
    """Transformer depth per level (SDXL base: 1, 2, 10). As in diffusers' config, the last entry is also the
    middle block's depth; a level without attention counts 1, or the middle block's depth if it is the last."""
    def depth(prefix):
        return len(_indices(source, re.escape(prefix) + r"transformer_blocks\.(\d+)\."))
    mid = depth(p + "middle_block.1.")
    depths = [depth(p + f"input_blocks.{level[0]}.1.") if a else 1 for level, a in zip(levels, has_attention)]
    if not has_attention[-1]:
        depths[-1] = mid
    elif depths[-1] != mid:
        raise UnsupportedArchitectureError(f"the middle block has {mid} transformer layers and the last level "
                                           f"{depths[-1]}: a layout diffusers' UNet cannot hold")
    return depths


def unet_config(source: TensorSource, yaml_params: dict) -> dict:
    """diffusers UNet2DConditionModel config from an LDM checkpoint's shapes (+ sidecar yaml hints)."""
    p = UNET_PREFIX
    config = encoder_config(source, p, yaml_params)
    per_level = config["layers_per_block"] + 1
    out_blocks = _indices(source, re.escape(p) + r"output_blocks\.(\d+)\.")
    up_attention = [p + f"output_blocks.{n}.1.proj_in.weight" in source for n in out_blocks[::per_level]]
    config["out_channels"] = source.shape(p + "out.2.weight")[0]
    config["up_block_types"] = ["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in up_attention]
    return config


def encoder_config(source: TensorSource, p: str, yaml_params: dict) -> dict:
    """The encoder half of a UNet config (what a ControlNet copies), from LDM names under prefix `p`."""
    conv_in = source.shape(p + "input_blocks.0.0.weight")
    blocks = _indices(source, re.escape(p) + r"input_blocks\.(\d+)\.")
    # each level: some resnets, then a downsampler (op) unless it is the last level
    levels, layers = [[]], None
    for n in blocks[1:]:
        if p + f"input_blocks.{n}.0.op.weight" in source:
            layers = layers or len(levels[-1])
            levels.append([])
        else:
            levels[-1].append(n)
    layers = layers or len(levels[-1])
    channels, has_attention = [], []
    for level in levels:
        channels.append(source.shape(p + f"input_blocks.{level[0]}.0.out_layers.3.weight")[0])
        has_attention.append(p + f"input_blocks.{level[0]}.1.proj_in.weight" in source)
    attn_keys = [k for k in source.keys() if k.startswith(p) and k.endswith("attn2.to_k.weight")]
    if not attn_keys:
        raise UnsupportedArchitectureError("the UNet has no cross-attention layers: not a text-to-image SD model")
    context_dim = source.shape(attn_keys[0])[1]
    first_attn = p + f"input_blocks.{levels[has_attention.index(True)][0]}.1."
    depths = _transformer_depths(source, p, levels, has_attention)
    linear = len(source.shape(first_attn + "proj_in.weight")) == 2
    sdxl = p + "label_emb.0.0.weight" in source

    heads = yaml_params.get("num_heads", -1)
    head_channels = yaml_params.get("num_head_channels", -1)
    if heads in (-1, None) and head_channels in (-1, None):
        heads, head_channels = (-1, 64) if context_dim == 1024 or sdxl else (8, -1)
    heads_per_block = [heads if heads and heads > 0 else ch // head_channels for ch in channels]

    cond_key = p + "time_embed.cond_proj.weight"
    return {
        "in_channels": conv_in[1],
        "block_out_channels": channels,
        "layers_per_block": layers,
        "down_block_types": ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in has_attention],
        "attention_head_dim": heads_per_block,
        "cross_attention_dim": context_dim,
        "use_linear_projection": linear,
        "transformer_layers_per_block": depths if len(set(depths)) > 1 else depths[0],
        "upcast_attention": bool(yaml_params.get("upcast_attention", False)),
        "norm_num_groups": int(yaml_params.get("norm_num_groups", 32)),   # LDM's is fixed at 32
        "time_cond_proj_dim": source.shape(cond_key)[1] if cond_key in source else None,
        **({"addition_embed_type": "text_time", "addition_time_embed_dim": 256,     # SGM's fixed Fourier width
            "projection_class_embeddings_input_dim": source.shape(p + "label_emb.0.0.weight")[1],
            "sample_size": 128} if sdxl else {}),
    }


def vae_config(source: TensorSource, prefix: str = VAE_PREFIX, scaling_factor: float = 0.18215,
               norm_num_groups: int = 32) -> dict:
    """diffusers AutoencoderKL config from an LDM VAE's shapes."""
    levels = _indices(source, re.escape(prefix) + r"encoder\.down\.(\d+)\.")
    layers = len(_indices(source, re.escape(prefix) + r"encoder\.down\.0\.block\.(\d+)\."))
    return {
        "in_channels": source.shape(prefix + "encoder.conv_in.weight")[1],
        "out_channels": source.shape(prefix + "decoder.conv_out.weight")[0],
        "latent_channels": source.shape(prefix + "decoder.conv_in.weight")[1],
        "block_out_channels": [source.shape(prefix + f"encoder.down.{i}.block.0.conv2.weight")[0] for i in levels],
        "layers_per_block": layers,
        "use_quant_conv": prefix + "quant_conv.weight" in source,
        "use_post_quant_conv": prefix + "post_quant_conv.weight" in source,
        "scaling_factor": scaling_factor,
        "norm_num_groups": norm_num_groups,
    }


def open_clip_config(source: TensorSource, p: str, keep_last_layer: bool) -> dict:
    """transformers CLIPTextConfig of an OpenCLIP text tower under prefix `p`. SD2 conditions on the
    penultimate layer, and diffusers drops the last (`keep_last_layer=False`); SDXL's bigG keeps it, as its
    pooled output comes from it, with `projection_dim` for the text projection."""
    width = source.shape(p + "token_embedding.weight")[1]
    layers = len(_indices(source, re.escape(p) + r"transformer\.resblocks\.(\d+)\."))
    config = {
        "vocab_size": source.shape(p + "token_embedding.weight")[0],
        "hidden_size": width,
        "intermediate_size": source.shape(p + "transformer.resblocks.0.mlp.c_fc.weight")[0],
        "num_hidden_layers": layers if keep_last_layer else layers - 1,
        "num_attention_heads": width // 64,
        "max_position_embeddings": source.shape(p + "positional_embedding")[0],
        "hidden_act": "gelu",
    }
    if keep_last_layer and p + "text_projection" in source:
        config["projection_dim"] = source.shape(p + "text_projection")[1]
    return config


def sgm_text_towers(source: TensorSource) -> list[tuple[dict, str, bool]]:
    """SDXL's text encoders in embedder order: (transformers config, key prefix, in OpenCLIP layout?).
    The base has CLIP-L (transformers names) then bigG (OpenCLIP names); the refiner bigG alone."""
    towers = []
    for i in range(4):
        base = f"{SGM_EMBEDDERS}{i}."
        if base + "transformer.text_model.embeddings.token_embedding.weight" in source:
            towers.append((clip_config_at(source, base + "transformer.text_model."), base + "transformer.text_model.",
                           False))
        elif base + "model.token_embedding.weight" in source:
            towers.append((open_clip_config(source, base + "model.", keep_last_layer=True), base + "model.", True))
    if not towers:
        raise UnsupportedArchitectureError("no text encoder found among conditioner.embedders.*: this SDXL "
                                           "checkpoint cannot encode prompts")
    return towers


def clip_config_at(source: TensorSource, p: str) -> dict:
    """transformers CLIPTextConfig of an OpenAI CLIP text tower in transformers names under prefix `p`."""
    width = source.shape(p + "embeddings.token_embedding.weight")[1]
    return {
        "vocab_size": source.shape(p + "embeddings.token_embedding.weight")[0],
        "hidden_size": width,
        "intermediate_size": source.shape(p + "encoder.layers.0.mlp.fc1.weight")[0],
        "num_hidden_layers": len(_indices(source, re.escape(p) + r"encoder\.layers\.(\d+)\.")),
        "num_attention_heads": width // 64,
        "max_position_embeddings": source.shape(p + "embeddings.position_embedding.weight")[0],
        "hidden_act": "quick_gelu",
    }


def clip_config(source: TensorSource) -> tuple[dict, str]:
    """transformers CLIPTextConfig of the checkpoint's text encoder and its key prefix."""
    if OPEN_CLIP_PREFIX + "token_embedding.weight" in source:
        return open_clip_config(source, OPEN_CLIP_PREFIX, keep_last_layer=False), OPEN_CLIP_PREFIX
    for p in (CLIP_PREFIX + "text_model.", CLIP_PREFIX):
        if p + "embeddings.token_embedding.weight" in source:
            return clip_config_at(source, p), p
    raise UnsupportedArchitectureError("no CLIP text encoder found (cond_stage_model.*): "
                                       "this checkpoint cannot encode prompts")
