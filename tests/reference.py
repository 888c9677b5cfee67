"""Reference models (diffusers / transformers) with random weights, and writers for the file formats users have.

The engine's LDM writer turns a model into an original-layout single-file checkpoint; tests check it
against diffusers' own LDM->diffusers converter, so the engine's key table is never its own judge.
"""
import json
from pathlib import Path

import torch

from engine.loading import ldm_export
from engine.loading.ldm_names import CLIP_PREFIX, OPEN_CLIP_PREFIX, open_clip_key

SD15_UNET = dict(sample_size=64, cross_attention_dim=768)   # diffusers' defaults are SD1.5's UNet
SD15_VAE = dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4, sample_size=512,
                down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
SD15_CLIP = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                 num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu")

TINY_UNET = dict(block_out_channels=(32, 64), layers_per_block=2, sample_size=16, norm_num_groups=32,
                 down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                 up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), attention_head_dim=8, cross_attention_dim=64)
TINY_VAE = dict(block_out_channels=(32, 64), layers_per_block=1, latent_channels=4, norm_num_groups=32,
                down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2)
TINY_CLIP = dict(vocab_size=49408, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                 num_attention_heads=1, max_position_embeddings=77, hidden_act="quick_gelu")


def reference_models(unet=TINY_UNET, vae=TINY_VAE, clip=TINY_CLIP, seed=0):
    """diffusers UNet2DConditionModel, AutoencoderKL and transformers CLIPTextModel, randomly initialised."""
    import diffusers
    import transformers
    torch.manual_seed(seed)
    with torch.no_grad():
        ref_unet = diffusers.UNet2DConditionModel(**unet).eval()
        ref_vae = diffusers.AutoencoderKL(**vae).eval()
        ref_clip = transformers.CLIPTextModel(transformers.CLIPTextConfig(**clip)).eval()
    return ref_unet, ref_vae, ref_clip


def save_diffusers_folder(folder: Path, unet, vae, clip, prediction_type="epsilon", pad_token="<|endoftext|>"):
    folder = Path(folder)
    unet.save_pretrained(folder / "unet")
    vae.save_pretrained(folder / "vae")
    clip.save_pretrained(folder / "text_encoder")
    (folder / "scheduler").mkdir(parents=True, exist_ok=True)
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(
        {"_class_name": "PNDMScheduler", "prediction_type": prediction_type, "num_train_timesteps": 1000}))
    (folder / "tokenizer").mkdir(exist_ok=True)
    (folder / "tokenizer" / "tokenizer_config.json").write_text(json.dumps({"pad_token": pad_token}))
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline",
                                                         "unet": ["diffusers", "UNet2DConditionModel"]}))
    return folder


def ldm_state_dict(unet, vae, clip, open_clip: bool = False, extra_clip_layer=None) -> dict:
    """An original-layout (CompVis) checkpoint dict: the engine's exporter for SD1 names; for SD2, the text
    encoder in fused OpenCLIP names (with the extra last layer OpenCLIP keeps)."""
    out = ldm_export.ldm_state_dict(unet, vae, clip)
    if not open_clip:
        return out
    out = {k: v for k, v in out.items() if not k.startswith(CLIP_PREFIX)}
    clip_sd = {k.removeprefix("text_model."): v for k, v in clip.state_dict().items()}
    if extra_clip_layer is not None:
        n = clip.config.num_hidden_layers
        clip_sd.update({k.replace("encoder.layers.0.", f"encoder.layers.{n}."): v.clone()
                        for k, v in extra_clip_layer.items()})
    out.update(open_clip_layout(clip_sd, OPEN_CLIP_PREFIX))
    out[OPEN_CLIP_PREFIX + "text_projection"] = torch.eye(clip.config.hidden_size)
    out[OPEN_CLIP_PREFIX + "logit_scale"] = torch.tensor(4.6)
    return out


def open_clip_layout(clip_sd: dict, prefix: str) -> dict:
    """transformers-named text encoder tensors -> OpenCLIP's names: fused q/k/v, a bare projection matrix."""
    out, fused = {}, {}
    for name, t in clip_sd.items():
        key, part = open_clip_key(name)
        if part is None:
            out[prefix + key] = t.clone()
        elif part == "T":
            out[prefix + key] = t.T.contiguous()
        else:
            fused.setdefault(key, [None] * 3)[part] = t
    for key, parts in fused.items():
        out[prefix + key] = torch.cat(parts, dim=0)
    return out


def sgm_state_dict(unet, vae, clip_l, bigg) -> dict:
    """An SDXL single file as SGM and A1111 write it: the LDM UNet (with label_emb) and VAE names,
    conditioner.embedders.0.transformer.* (CLIP-L, transformers names) and .1.model.* (bigG, OpenCLIP names);
    with clip_l None, a refiner's: bigG alone as embedder 0."""
    out = {k: v for k, v in ldm_export.ldm_state_dict(unet, vae, bigg).items() if not k.startswith(CLIP_PREFIX)}
    towers = [("transformer.", clip_l), ("model.", bigg)] if clip_l is not None else [("model.", bigg)]
    for i, (kind, encoder) in enumerate(towers):
        prefix = f"conditioner.embedders.{i}.{kind}"
        names = {k.removeprefix("text_model."): v for k, v in encoder.state_dict().items()}
        if kind == "transformer.":
            out.update({prefix + "text_model." + k: v.clone() for k, v in names.items()})
        else:
            out.update(open_clip_layout(names, prefix))
            out[prefix + "logit_scale"] = torch.tensor(4.6)
    return out
