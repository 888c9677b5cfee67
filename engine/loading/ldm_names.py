"""Where each diffusers-named parameter lives in an original (CompVis / A1111) LDM checkpoint.

Each function maps one diffusers key to its LDM key; the loader walks the keys the model
expects and fetches them, so unused tensors (EMA copies, other models) are never read.
"""
import re

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.transformer."       # SD1.x: transformers CLIPTextModel names
OPEN_CLIP_PREFIX = "cond_stage_model.model."        # SD2.x: OpenCLIP names
SGM_EMBEDDERS = "conditioner.embedders."           # SDXL: .N.transformer.* (CLIP-L) and .N.model.* (OpenCLIP bigG)

_UNET_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
                "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
_VAE_RESNET = {"conv_shortcut": "nin_shortcut"}
_VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _swap_head(rest: str, table: dict[str, str]) -> str:
    """Rename the leading module name of `rest` ("conv1.weight") through `table`."""
    for new, old in table.items():
        if rest.startswith(new + "."):
            return old + rest[len(new):]
    return rest


def unet_key(key: str, layers_per_block: int, attention_levels_up: set[int]) -> str:
    """diffusers UNet key -> LDM key (without the model.diffusion_model. prefix)."""
    per_level = layers_per_block + 1
    fixed = {"conv_in.": "input_blocks.0.0.", "conv_norm_out.": "out.0.", "conv_out.": "out.2.",
             "time_embedding.linear_1.": "time_embed.0.", "time_embedding.linear_2.": "time_embed.2.",
             "time_embedding.cond_proj.": "time_embed.cond_proj.",
             "add_embedding.linear_1.": "label_emb.0.0.", "add_embedding.linear_2.": "label_emb.0.2.",
             "mid_block.resnets.0.": "middle_block.0.", "mid_block.attentions.0.": "middle_block.1.",
             "mid_block.resnets.1.": "middle_block.2."}
    for new, old in fixed.items():
        if key.startswith(new):
            rest = key[len(new):]
            return old + (_swap_head(rest, _UNET_RESNET) if "resnets" in new else rest)
    m = re.match(r"(down|up)_blocks\.(\d+)\.(resnets|attentions|downsamplers|upsamplers)\.(\d+)\.(.+)", key)
    if not m:
        raise KeyError(key)
    side, level, part, j, rest = m[1], int(m[2]), m[3], int(m[4]), m[5]
    if side == "down":
        if part == "downsamplers":
            return f"input_blocks.{1 + level * per_level + layers_per_block}.0.op.{rest.removeprefix('conv.')}"
        index = 1 + level * per_level + j
        return f"input_blocks.{index}." + (f"0.{_swap_head(rest, _UNET_RESNET)}" if part == "resnets" else f"1.{rest}")
    if part == "upsamplers":
        slot = 2 if level in attention_levels_up else 1
        return f"output_blocks.{level * per_level + layers_per_block}.{slot}.{rest}"
    index = level * per_level + j
    return f"output_blocks.{index}." + (f"0.{_swap_head(rest, _UNET_RESNET)}" if part == "resnets" else f"1.{rest}")


def vae_key(key: str, levels: int) -> str:
    """diffusers AutoencoderKL key -> LDM key (without the first_stage_model. prefix)."""
    if key.startswith(("quant_conv.", "post_quant_conv.")):
        return key
    coder, rest = key.split(".", 1)
    if rest.startswith("conv_norm_out."):
        return f"{coder}.norm_out.{rest[len('conv_norm_out.'):]}"
    if rest.startswith(("conv_in.", "conv_out.")):
        return key
    m = re.match(r"mid_block\.(resnets|attentions)\.(\d)\.(.+)", rest)
    if m:
        if m[1] == "resnets":
            return f"{coder}.mid.block_{int(m[2]) + 1}.{_swap_head(m[3], _VAE_RESNET)}"
        return f"{coder}.mid.attn_1.{_swap_head(m[3], _VAE_ATTENTION)}"
    m = re.match(r"(down|up)_blocks\.(\d+)\.(resnets|downsamplers|upsamplers)\.(\d+)\.(.+)", rest)
    if not m:
        raise KeyError(key)
    level = int(m[2]) if m[1] == "down" else levels - 1 - int(m[2])   # LDM numbers decoder levels bottom-up
    ldm_side = "down" if m[1] == "down" else "up"
    if m[3] == "resnets":
        return f"{coder}.{ldm_side}.{level}.block.{m[4]}.{_swap_head(m[5], _VAE_RESNET)}"
    return f"{coder}.{ldm_side}.{level}.{'downsample' if m[1] == 'down' else 'upsample'}.{m[5]}"


def open_clip_key(key: str) -> tuple[str, int | str | None]:
    """transformers CLIPTextModel key -> (OpenCLIP key, which third of a fused q/k/v tensor, or "T": the
    transpose (OpenCLIP's text_projection is a bare matrix used as x @ P), or None: the tensor as it is)."""
    if key == "text_projection.weight":
        return "text_projection", "T"
    fixed = {"embeddings.token_embedding.weight": "token_embedding.weight",
             "embeddings.position_embedding.weight": "positional_embedding",
             "final_layer_norm.weight": "ln_final.weight", "final_layer_norm.bias": "ln_final.bias"}
    if key in fixed:
        return fixed[key], None
    m = re.match(r"encoder\.layers\.(\d+)\.(.+)\.(weight|bias)", key)
    if not m:
        raise KeyError(key)
    block, module, kind = f"transformer.resblocks.{m[1]}", m[2], m[3]
    qkv = {"self_attn.q_proj": 0, "self_attn.k_proj": 1, "self_attn.v_proj": 2}
    if module in qkv:
        return f"{block}.attn.in_proj_{kind}", qkv[module]
    names = {"self_attn.out_proj": "attn.out_proj", "layer_norm1": "ln_1", "layer_norm2": "ln_2",
             "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj"}
    return f"{block}.{names[module]}.{kind}", None
