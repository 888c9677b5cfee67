"""diffusers-format model folders: model_index.json with unet/, vae/, text_encoder/ sub-folders; SDXL's also
text_encoder_2/ (OpenCLIP bigG with its projection) and tokenizer_2/, the refiner's text_encoder_2/ alone."""
import json
from pathlib import Path

import torch

from ..errors import MissingKeysError, UnsupportedArchitectureError, WrongFileTypeError
from ..models import AutoencoderKL, CLIPTextConfig, CLIPTextModel, UNet2DConditionModel, UNetConfig, VAEConfig
from .assembly import ModelComponents, assemble
from .tensor_files import open_tensors

_UNSUPPORTED_PIPELINES = {"StableDiffusion3": "SD3", "Flux": "Flux",
                          "StableCascade": "Stable Cascade", "PixArt": "PixArt", "Kandinsky": "Kandinsky"}
_WEIGHT_NAMES = ("diffusion_pytorch_model", "model", "pytorch_model")


def is_diffusers_folder(path: Path) -> bool:
    return Path(path).is_dir() and (Path(path) / "model_index.json").is_file()


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError as e:
        raise MissingKeysError(f"{path} is missing") from e
    except json.JSONDecodeError as e:
        raise WrongFileTypeError(f"{path} is not valid JSON ({e})") from e


def weights_file(folder: Path) -> Path:
    """The component's weights: safetensors before pickles, full precision before fp16 variants."""
    for variant in ("", ".fp16"):
        for stem in _WEIGHT_NAMES:
            for suffix in (".safetensors", ".safetensors.index.json", ".bin", ".bin.index.json"):
                candidate = folder / f"{stem}{variant}{suffix}"
                if candidate.is_file():
                    return candidate
    raise MissingKeysError(f"{folder} has no weights file (diffusion_pytorch_model.safetensors or similar)")


def _component(folder: Path, module_class, config, dtype, device, strip_prefix: str = ""):
    source = open_tensors(weights_file(folder))

    def fetch(name):
        for key in (name, strip_prefix + name):
            if key in source:
                return source.get(key)
        return None
    return assemble(module_class, config, fetch, str(folder), dtype, device, source.fresh)


def load_unet_folder(folder: Path, dtype: torch.dtype, device: torch.device) -> UNet2DConditionModel:
    """A diffusers `unet/` folder alone (config.json and its weights)."""
    folder = Path(folder)
    return _component(folder, UNet2DConditionModel, UNetConfig.from_dict(read_json(folder / "config.json")), dtype,
                      device)


def pad_token_id(folder: Path, hidden_act: str, tokenizer: str = "tokenizer") -> int:
    """SD2's OpenCLIP tokenizer pads with "!" (id 0); OpenAI CLIP's with <|endoftext|> (49407)."""
    config_path = folder / tokenizer / "tokenizer_config.json"
    if config_path.is_file():
        pad = read_json(config_path).get("pad_token")
        pad = pad.get("content") if isinstance(pad, dict) else pad
        if pad is not None:
            return 0 if pad == "!" else 49407
    return 0 if hidden_act == "gelu" else 49407


CONSISTENCY_SCHEDULER = "CMStochasticIterativeScheduler"   # marks an EDM-parametrised consistency model


def load_diffusers_folder(path: Path, dtype: torch.dtype, device: torch.device,
                          prediction_type: str | None = None) -> ModelComponents:
    path = Path(path)
    index = read_json(path / "model_index.json")
    pipeline_class = index.get("_class_name", "")
    for marker, family in _UNSUPPORTED_PIPELINES.items():
        if pipeline_class.startswith(marker):
            raise UnsupportedArchitectureError(f"{path.name} is a {family} model ({pipeline_class}): only the "
                                               f"Stable Diffusion 1.x / 2.x family is supported yet")

    unet_cfg = UNetConfig.from_dict(read_json(path / "unet" / "config.json"))
    unet = _component(path / "unet", UNet2DConditionModel, unet_cfg, dtype, device)
    vae_cfg = VAEConfig.from_dict(read_json(path / "vae" / "config.json"))
    vae = _component(path / "vae", AutoencoderKL, vae_cfg, dtype, device)
    towers = [_text_encoder(path, name, dtype, device) for name in ("text_encoder", "text_encoder_2")
              if (path / name / "config.json").is_file()]
    if not towers:
        raise MissingKeysError(f"{path.name} has no text_encoder/ folder")

    scheduler_file = path / "scheduler" / "scheduler_config.json"
    scheduler = read_json(scheduler_file) if scheduler_file.is_file() else {}
    (text_encoder, pad), (text_encoder_2, pad_2) = towers[0], (towers[1] if len(towers) > 1 else (None, 0))
    consistency = scheduler if scheduler.get("_class_name") == CONSISTENCY_SCHEDULER else None
    if consistency is not None and prediction_type not in (None, "consistency"):
        raise ValueError(f"{path.name} is a consistency model ({CONSISTENCY_SCHEDULER}): it cannot be run as "
                         f"{prediction_type} prediction")
    if consistency is not None:
        prediction_type = "consistency"
    return ModelComponents(unet, vae, text_encoder, pad, prediction_type or scheduler.get("prediction_type", "epsilon"),
                           str(path), bool(scheduler.get("rescale_betas_zero_snr", False)), text_encoder_2, pad_2,
                           consistency)


def _text_encoder(path: Path, name: str, dtype, device) -> tuple:
    """(text encoder, its tokenizer's pad id); a CLIPTextModelWithProjection keeps its text projection."""
    config = read_json(path / name / "config.json")
    with_projection = "CLIPTextModelWithProjection" in config.get("architectures", [])
    clip_cfg = CLIPTextConfig.from_dict(config, with_projection=with_projection)
    tokenizer = name.replace("text_encoder", "tokenizer")
    return (_component(path / name, CLIPTextModel, clip_cfg, dtype, device, "text_model."),
            pad_token_id(path, clip_cfg.hidden_act, tokenizer))
