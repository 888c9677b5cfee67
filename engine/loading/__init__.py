"""Checkpoint reading: diffusers folders, single-file .safetensors/.ckpt, separate VAE files. Never a network."""
from pathlib import Path

import torch

from ..errors import WrongFileTypeError
from ..models import AutoencoderKL, VAEConfig
from . import detect
from .assembly import ModelComponents, assemble
from .diffusers_folder import is_diffusers_folder, load_diffusers_folder, read_json, weights_file
from .ldm_names import VAE_PREFIX
from .single_file import load_single_file, vae_fetch
from .tensor_files import PICKLE_SUFFIXES, SAFETENSORS_SUFFIXES, open_tensors

__all__ = ["ModelComponents", "load_components", "load_vae"]


def load_components(path: str | Path, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu",
                    prediction_type: str | None = None) -> ModelComponents:
    """UNet, VAE and text encoder of a checkpoint file or diffusers folder, on `device` in `dtype`."""
    path = Path(path)
    if is_diffusers_folder(path):
        return load_diffusers_folder(path, dtype, torch.device(device), prediction_type)
    if path.is_dir():
        raise WrongFileTypeError(f"{path} is a folder without model_index.json: not a diffusers model folder")
    if not path.exists():
        raise FileNotFoundError(f"no such model: {path}")
    if path.suffix.lower() not in SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES:
        raise WrongFileTypeError(f"{path.name}: expected .safetensors, .ckpt, .pt, .pth or .bin")
    return load_single_file(path, dtype, torch.device(device), prediction_type)


def load_vae(path: str | Path, scaling_factor: float, dtype: torch.dtype = torch.float32,
             device: torch.device | str = "cpu") -> AutoencoderKL:
    """A separate VAE (models/VAE/): an LDM-format file, with or without first_stage_model., or a diffusers folder.

    The checkpoint's latent scaling factor is kept, as A1111 does.
    """
    path = Path(path)
    if path.is_dir():
        config = VAEConfig.from_dict({**read_json(path / "config.json"), "scaling_factor": scaling_factor})
        source = open_tensors(weights_file(path))
        fetch = lambda name: source.get(name) if name in source else None  # noqa: E731
        return assemble(AutoencoderKL, config, fetch, path.name, dtype, torch.device(device), source.fresh)
    source = open_tensors(path)
    prefix = VAE_PREFIX if VAE_PREFIX + "encoder.conv_in.weight" in source else ""
    if prefix + "encoder.conv_in.weight" not in source:
        raise WrongFileTypeError(f"{path.name} is not a VAE: no encoder.conv_in.weight among its tensors")
    config = VAEConfig.from_dict(detect.vae_config(source, prefix, scaling_factor))
    return assemble(AutoencoderKL, config, vae_fetch(source, config, prefix), path.name, dtype, torch.device(device),
                    source.fresh)
