"""The inverse of single-file loading: a model's tensors under original (CompVis / A1111) LDM key names."""
import torch

from .ldm_names import CLIP_PREFIX, UNET_PREFIX, VAE_PREFIX, unet_key, vae_key


def ldm_state_dict(unet, vae, text_encoder) -> dict[str, torch.Tensor]:
    """model.diffusion_model.*, first_stage_model.* (attention projections as 1x1 convs, as LDM stores them)
    and cond_stage_model.transformer.text_model.* of an SD1-style model. Works for engine and diffusers modules."""
    cfg = unet.config
    up_attention = {i for i, kind in enumerate(cfg.up_block_types) if kind.startswith("CrossAttn")}
    out = {UNET_PREFIX + unet_key(name, cfg.layers_per_block, up_attention): t.clone()
           for name, t in unet.state_dict().items()}
    levels = len(vae.config.block_out_channels)
    for name, t in vae.state_dict().items():
        key = VAE_PREFIX + vae_key(name, levels)
        out[key] = (t[:, :, None, None] if ".mid.attn_1." in key and t.ndim == 2 else t).clone()
    for name, t in text_encoder.state_dict().items():
        out[CLIP_PREFIX + "text_model." + name.removeprefix("text_model.")] = t.clone()
    return out
