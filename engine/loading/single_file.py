"""Single-file checkpoints as users download them for A1111: original LDM key names (SD1.x / SD2.x), and
SGM's for SDXL (the same UNet names plus label_emb; text towers under conditioner.embedders.N)."""
from pathlib import Path

import torch
import yaml

from ..models import AutoencoderKL, CLIPTextConfig, CLIPTextModel, UNet2DConditionModel, UNetConfig, VAEConfig
from ..errors import UnsupportedArchitectureError
from . import detect
from .assembly import ModelComponents, assemble
from .ldm_names import OPEN_CLIP_PREFIX, UNET_PREFIX, VAE_PREFIX, open_clip_key, unet_key, vae_key
from .tensor_files import TensorSource, open_tensors

SDXL_SCALE = 0.13025         # SDXL's VAE latent scaling (SGM's scale_factor)
EDM_MARKERS = ("edm_mean", "edm_vpred.sigma_max")


def sidecar_yaml(path: Path) -> dict:
    """The LDM config beside a checkpoint (`model.yaml` for `model.safetensors`), as A1111 reads it.
    Besides LDM's keys the engine reads `norm_num_groups` in unet_config.params and in
    first_stage_config.params.ddconfig, for slim models whose GroupNorm is not LDM's 32 groups."""
    yaml_path = path.with_suffix(".yaml")
    if not yaml_path.is_file():
        return {}
    params = (yaml.safe_load(yaml_path.read_text()) or {}).get("model", {}).get("params", {})
    return params if isinstance(params, dict) else {}


def _unet_fetch(source: TensorSource, config: UNetConfig, used: set):
    up_attention = {i for i, kind in enumerate(config.up_block_types) if kind.startswith("CrossAttn")}

    def fetch(name):
        key = UNET_PREFIX + unet_key(name, config.layers_per_block, up_attention)
        if key not in source:
            return None
        used.add(key)
        return source.get(key)
    return fetch


def _check_all_used(source: TensorSource, used: set, what: str) -> None:
    """Every UNet tensor of the file has found its place: else the layout read from it is not the file's."""
    left = sorted(k for k in source.keys() if k.startswith(UNET_PREFIX) and k not in used)
    if left:
        raise UnsupportedArchitectureError(f"{what}: {len(left)} tensors have no place in the layout read from the "
                                           f"file, e.g. {', '.join(left[:3])}")


def vae_fetch(source: TensorSource, config: VAEConfig, prefix: str):
    levels = len(config.block_out_channels)

    def fetch(name):
        key = prefix + vae_key(name, levels)
        return source.get(key) if key in source else None
    return fetch


def clip_fetch(source: TensorSource, prefix: str, open_clip: bool):
    """The text encoder's tensors under `prefix`: transformers names as they are, or OpenCLIP's converted."""
    if not open_clip:
        return lambda name: source.get(prefix + name) if prefix + name in source else None

    def fetch(name):
        key, part = open_clip_key(name)
        if prefix + key not in source:
            return None
        tensor = source.get(prefix + key)
        if part == "T":
            return tensor.T.contiguous()
        return tensor if part is None else tensor.chunk(3, dim=0)[part]
    return fetch


def load_single_file(path: Path, dtype: torch.dtype, device: torch.device,
                     prediction_type: str | None = None) -> ModelComponents:
    path = Path(path)
    source = open_tensors(path)
    detect.check_family(source, path.name)
    if any(k in source for k in EDM_MARKERS):
        raise UnsupportedArchitectureError(f"{path.name} is an EDM-parametrised SDXL model (Playground v2.5 or an "
                                           "EDM v-prediction file); those are not supported yet")
    params = sidecar_yaml(path)
    unet_params = params.get("unet_config", {}).get("params", {})

    unet_cfg = UNetConfig.from_dict(detect.unet_config(source, unet_params))
    used = set()
    unet = assemble(UNet2DConditionModel, unet_cfg, _unet_fetch(source, unet_cfg, used), f"{path.name} UNet", dtype,
                    device, source.fresh)
    _check_all_used(source, used, f"{path.name} UNet")

    ddconfig = params.get("first_stage_config", {}).get("params", {}).get("ddconfig", {})
    scale = params.get("scale_factor", SDXL_SCALE if unet_cfg.is_sdxl else 0.18215)
    vae_cfg = VAEConfig.from_dict(detect.vae_config(source, VAE_PREFIX, scale, ddconfig.get("norm_num_groups", 32)))
    vae = assemble(AutoencoderKL, vae_cfg, vae_fetch(source, vae_cfg, VAE_PREFIX), f"{path.name} VAE", dtype, device,
                   source.fresh)

    marked_v = unet_cfg.is_sdxl and "v_pred" in source    # NoobAI-style v-prediction SDXL files mark themselves
    if prediction_type is None:
        prediction_type = "v_prediction" if params.get("parameterization") == "v" or marked_v else "epsilon"
    if unet_cfg.is_sdxl:
        towers = [_text_tower(source, *tower, f"{path.name} text encoder {i + 1}", dtype, device)
                  for i, tower in enumerate(detect.sgm_text_towers(source))]
        (text_encoder, pad), (second, pad_2) = towers[0], (towers[1] if len(towers) > 1 else (None, 0))
        zero_snr = marked_v and "ztsnr" in source           # ... and a zero-terminal-SNR schedule with `ztsnr`
        return ModelComponents(unet, vae, text_encoder, pad, prediction_type, str(path), zero_snr, second, pad_2)
    clip_dict, clip_prefix = detect.clip_config(source)
    text_encoder, pad = _text_tower(source, clip_dict, clip_prefix, clip_prefix == OPEN_CLIP_PREFIX,
                                    f"{path.name} text encoder", dtype, device)
    return ModelComponents(unet, vae, text_encoder, pad, prediction_type, str(path))


def _text_tower(source: TensorSource, config: dict, prefix: str, open_clip: bool, what: str, dtype, device):
    """(text encoder, its pad id): OpenCLIP's tokenizer pads with id 0, OpenAI CLIP's with <|endoftext|>."""
    clip_cfg = CLIPTextConfig.from_dict(config, with_projection="projection_dim" in config)
    encoder = assemble(CLIPTextModel, clip_cfg, clip_fetch(source, prefix, open_clip), what, dtype, device,
                       source.fresh)
    return encoder, 0 if open_clip else 49407
