"""ControlNet files as users have them: the original release (.pth / .safetensors, `control_model.*` or bare
LDM names, v1.0 files that also carry a whole SD model), diffusers folders (fp16 variants too), and diffusers-
named single files (how most SDXL ControlNets are shared: `diffusion_pytorch_model.safetensors` renamed).

Architecture comes from tensor shapes, as for checkpoints. The shuffle model's global average pooling is not
visible in shapes: its sidecar .yaml says `global_average_pooling: True`, or its name contains "shuffle",
which is how A1111's ControlNet extension tells.
"""
import re
from pathlib import Path

import torch
import yaml

from ..errors import ModelLoadError, WrongFileTypeError
from ..models.controlnet import ControlNetConfig, ControlNetModel
from .assembly import assemble
from .detect import _indices, encoder_config
from .diffusers_folder import read_json, weights_file
from .ldm_names import unet_key
from .tensor_files import TensorSource, open_tensors

CONTROL_PREFIX = "control_model."


def controlnet_key(name: str, layers_per_block: int, hint_convs: int) -> str:
    """diffusers ControlNetModel key -> original key (without the control_model. prefix)."""
    if name.startswith("controlnet_cond_embedding."):
        rest = name[len("controlnet_cond_embedding."):]
        if rest.startswith("conv_in."):
            return "input_hint_block.0." + rest[len("conv_in."):]
        if rest.startswith("conv_out."):
            return f"input_hint_block.{2 * (hint_convs - 1)}." + rest[len("conv_out."):]
        m = re.match(r"blocks\.(\d+)\.(.+)", rest)
        return f"input_hint_block.{2 * (int(m[1]) + 1)}.{m[2]}"
    m = re.match(r"controlnet_down_blocks\.(\d+)\.(.+)", name)
    if m:
        return f"zero_convs.{m[1]}.0.{m[2]}"
    if name.startswith("controlnet_mid_block."):
        return "middle_block_out.0." + name[len("controlnet_mid_block."):]
    return unet_key(name, layers_per_block, set())


def _sidecar_params(path: Path) -> dict:
    sidecar = path.with_suffix(".yaml")
    if not sidecar.is_file():
        return {}
    params = (yaml.safe_load(sidecar.read_text()) or {}).get("model", {}).get("params", {})
    control = params.get("control_stage_config", {}).get("params", {}) if isinstance(params, dict) else {}
    return control if isinstance(control, dict) else {}


def original_config(source: TensorSource, prefix: str, path: Path) -> dict:
    """diffusers ControlNetModel config from an original-format file's shapes (+ sidecar yaml)."""
    hints = _indices(source, re.escape(prefix) + r"input_hint_block\.(\d+)\.weight")
    shapes = [source.shape(f"{prefix}input_hint_block.{i}.weight") for i in hints]
    params = _sidecar_params(path)
    config = encoder_config(source, prefix, params)
    config.update(
        conditioning_channels=shapes[0][1],
        conditioning_embedding_out_channels=[shapes[0][0]] + [s[0] for s in shapes[2:-1:2]],
        global_pool_conditions=bool(params.get("global_average_pooling", "shuffle" in path.name.lower())),
    )
    return config


class _OriginalNames:
    """A diffusers-named ControlNet file seen under the original names, so its shapes read as an original's."""

    def __init__(self, source: TensorSource):
        layers = len(_indices(source, r"down_blocks\.0\.resnets\.(\d+)\.conv1\.weight"))
        hint_convs = len(_indices(source, r"controlnet_cond_embedding\.blocks\.(\d+)\.weight")) + 2
        try:
            self.names = {controlnet_key(k, layers, hint_convs): k for k in source.keys()}
        except (KeyError, TypeError) as e:
            raise WrongFileTypeError(f"not a ControlNet in diffusers' names: unexpected tensor {e}") from None
        self.source = source

    def keys(self):
        return self.names.keys()

    def __contains__(self, key: str) -> bool:
        return key in self.names

    def shape(self, key: str) -> tuple[int, ...]:
        return self.source.shape(self.names[key])


def _diffusers_named(source: TensorSource) -> bool:
    return "controlnet_cond_embedding.conv_in.weight" in source


def controlnet_kind(path: str | Path) -> tuple[bool, int] | None:
    """(SDXL?, cross-attention width) of a ControlNet, read from its config or its file's header only; None
    for pickles (they would have to be read whole) and for what cannot be read."""
    path = Path(path)
    try:
        if path.is_dir():
            config = read_json(path / "config.json")
            return config.get("addition_embed_type") == "text_time", int(config["cross_attention_dim"])
        if path.suffix.lower() != ".safetensors":
            return None
        source = open_tensors(path)
        keys = list(source.keys())
        to_k = next(k for k in keys if k.endswith("attn2.to_k.weight"))
        sdxl = any(k.endswith(("label_emb.0.0.weight", "add_embedding.linear_1.weight")) for k in keys)
        return sdxl, source.shape(to_k)[1]
    except (OSError, ValueError, KeyError, StopIteration, ModelLoadError):
        return None


def load_controlnet(path: str | Path, dtype: torch.dtype = torch.float32,
                    device: torch.device | str = "cpu") -> ControlNetModel:
    path = Path(path)
    device = torch.device(device)
    if path.is_dir():
        config = ControlNetConfig.from_dict(read_json(path / "config.json"))
        source = open_tensors(weights_file(path))
        return assemble(ControlNetModel, config, lambda n: source.get(n) if n in source else None, path.name,
                        dtype, device, source.fresh)
    source = open_tensors(path)
    if _diffusers_named(source):
        try:
            config = ControlNetConfig.from_dict(original_config(_OriginalNames(source), "", path))
        except WrongFileTypeError as e:
            raise WrongFileTypeError(f"{path.name}: {e}") from None
        return assemble(ControlNetModel, config, lambda n: source.get(n) if n in source else None, path.name,
                        dtype, device, source.fresh)
    prefix = CONTROL_PREFIX if CONTROL_PREFIX + "input_blocks.0.0.weight" in source else ""
    if prefix + "input_hint_block.0.weight" not in source:
        raise WrongFileTypeError(f"{path.name} is not a ControlNet: no input_hint_block among its tensors")
    config = ControlNetConfig.from_dict(original_config(source, prefix, path))
    layers = config.unet.layers_per_block
    hint_convs = len(_indices(source, re.escape(prefix) + r"input_hint_block\.(\d+)\.weight"))

    def fetch(name):
        key = prefix + controlnet_key(name, layers, hint_convs)
        return source.get(key) if key in source else None
    return assemble(ControlNetModel, config, fetch, path.name, dtype, device, source.fresh)
