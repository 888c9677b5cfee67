"""Tiny autoencoders (TAESD) from models/VAE-approx: A1111's `taesd_decoder.pth` / `taesdxl_decoder.pth`,
their `.safetensors` twins, diffusers `AutoencoderTiny` folders, and the starter's own decoder.

The architecture is read from the tensors' shapes (how many blocks each stage has, how wide), so a decoder
trained for another latent space (16 channels, 4x instead of 8x) loads without a config. Which decoder serves a
model: one whose latent channels and upscale match the model's VAE, preferring A1111's name for the family.
"""
from pathlib import Path

import torch

from ..errors import EngineError, WrongFileTypeError
from ..models.tiny_vae import TinyAutoencoder, TinyVAEConfig
from .diffusers_folder import read_json, weights_file
from .tensor_files import PICKLE_SUFFIXES, SAFETENSORS_SUFFIXES, open_tensors

FAMILY_NAMES = {"SDXL": "taesdxl", "SDXL refiner": "taesdxl", "SD3": "taesd3"}   # others: taesd


def _stages(shapes: dict[str, tuple], decoder: bool) -> dict:
    """Widths and block counts per stage from a Sequential's `N.` keys (diffusers' layer order)."""
    indices = sorted({int(k.split(".")[0]) for k in shapes})
    widths, blocks, ends = [], [], {}
    for n, i in enumerate(indices):
        if f"{i}.conv.0.weight" in shapes:
            blocks[-1] += 1
            continue
        out_ch, in_ch = shapes[f"{i}.weight"][:2]
        if n == 0:
            ends["first"] = in_ch
        elif f"{i}.bias" in shapes:          # only the first and the last plain convolutions have a bias
            ends["last"] = out_ch
            continue
        widths.append(out_ch)
        blocks.append(0)
    if not widths or "last" not in ends:
        raise WrongFileTypeError("not a tiny autoencoder: its layers do not follow TAESD's")
    if decoder:
        return {"latent_channels": ends["first"], "out_channels": ends["last"],
                "decoder_block_out_channels": widths, "num_decoder_blocks": blocks}
    return {"in_channels": ends["first"], "latent_channels": ends["last"],
            "encoder_block_out_channels": widths, "num_encoder_blocks": blocks}


def _layers(path: Path):
    """The file's tensors and, per half present, layer key (`N.` in diffusers' order) -> the file's key."""
    source = open_tensors(weights_file(path) if path.is_dir() else path)
    keys = list(source.keys())
    halves = {}
    for half in ("encoder", "decoder"):
        prefix = f"{half}.layers."
        if any(k.startswith(prefix) for k in keys):
            halves[half] = {k[len(prefix):]: k for k in keys if k.startswith(prefix)}
    if not halves and keys and all(k.split(".")[0].isdigit() for k in keys):
        if "0.weight" not in keys and "1.weight" in keys:       # madebyollin's decoder: a Clamp() at 0
            halves["decoder"] = {f"{int(k.split('.')[0]) - 1}.{k.split('.', 1)[1]}": k for k in keys}
        else:
            halves["decoder" if "decoder" in path.name.lower() else "encoder"] = {k: k for k in keys}
    if not halves:
        raise WrongFileTypeError(f"{path.name} is not a tiny autoencoder (TAESD): no encoder/decoder layers in it")
    return source, halves


def _config(path: Path, source, halves: dict) -> TinyVAEConfig:
    config = read_json(path / "config.json") if path.is_dir() else {}
    for half, names in halves.items():
        config.update(_stages({k: source.shape(v) for k, v in names.items()}, half == "decoder"))
    return TinyVAEConfig.from_dict(config)


def tiny_vae_config(path: str | Path) -> TinyVAEConfig:
    """The architecture of a tiny autoencoder file or folder, from its shapes (and a folder's config.json)."""
    path = Path(path)
    return _config(path, *_layers(path))


def load_tiny_vae(path: str | Path, dtype: torch.dtype = torch.float32,
                  device: torch.device | str = "cpu") -> TinyAutoencoder:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such tiny autoencoder: {path}")
    if path.is_file() and path.suffix.lower() not in SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES:
        raise WrongFileTypeError(f"{path.name}: expected .safetensors, .pth, .pt or a diffusers folder")
    source, halves = _layers(path)
    model = TinyAutoencoder(_config(path, source, halves), encoder="encoder" in halves, decoder="decoder" in halves)
    for half, names in halves.items():
        try:
            getattr(model, half).layers.load_state_dict({k: source.get(v) for k, v in names.items()}, strict=True)
        except RuntimeError as error:
            raise WrongFileTypeError(f"{path.name}: its {half} does not fit TAESD's layout ({error})") from error
    return model.to(device, dtype).eval().requires_grad_(False)


def find_tiny_decoder(folder: str | Path, family: str, latent_channels: int, downscale: int) -> Path | None:
    """The tiny decoder in `folder` for a model whose VAE has `latent_channels` and `downscale`; None if none.
    Candidates are names with `taesd` in them (not encoder-only files) and AutoencoderTiny folders; A1111's
    name for the family (taesd / taesdxl / taesd3) wins over other decoders of the same shape."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    wanted = FAMILY_NAMES.get(family, "taesd")
    fitting = []
    for path in sorted(folder.iterdir()):
        name = path.name.lower()
        is_folder = path.is_dir() and (path / "config.json").is_file() and \
            read_json(path / "config.json").get("_class_name") == "AutoencoderTiny"
        if not (is_folder or ("taesd" in name and "encoder" not in name
                              and path.suffix.lower() in SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES)):
            continue
        try:
            config = tiny_vae_config(path)
        except (EngineError, OSError, KeyError, ValueError):
            continue
        if config.latent_channels == latent_channels and config.downscale == downscale:
            stem = name.split("_")[0].split(".")[0]
            fitting.append((stem != wanted, path))
    return min(fitting)[1] if fitting else None
