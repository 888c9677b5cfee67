"""LoRA files (Hu et al. 2021) as weight patches: W' = W + strength * (alpha / rank) * up @ down.

Formats read:
- kohya / A1111: `lora_unet_<module path, dots as underscores>.lora_down.weight`, `.lora_up.weight` and
  `.alpha`, the path in diffusers' names (`down_blocks_1_attentions_0_...`) or in LDM / SGM's
  (`input_blocks_4_1_transformer_blocks_0_...`, `middle_block_1_...`, `output_blocks_...`);
  `lora_te_text_model_...` for the text encoder, for SDXL `lora_te1_` (CLIP ViT-L) and `lora_te2_` (OpenCLIP
  bigG). LoCon conv layers carry a k x k `lora_down` and a 1 x 1 `lora_up`. LCM-LoRA is such a file.
- diffusers / PEFT: `unet.<module path>.lora_A.weight` (down), `.lora_B.weight` (up), optional `.alpha`;
  `text_encoder.<module path>` (SDXL also `text_encoder_2.`). Without alpha the scale is 1 (alpha = rank).
A LoRA of the other family (SDXL's two text towers against SD1.x / SD2.x's one) is refused by name.

A `LoraPatcher` adds the deltas in place and keeps the original tensors, so `restore()` gives back the
exact weights (ComfyUI's model_patcher idea: key-addressed patches, backup and restore).
"""
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ModelLoadError
from .ldm_names import unet_key
from .tensor_files import open_tensors

KOHYA_PREFIXES = {"lora_unet_": "unet", "lora_te_": "text_encoder", "lora_te1_": "text_encoder",
                  "lora_te2_": "text_encoder_2"}
PEFT_PREFIXES = {"unet.": "unet", "text_encoder.": "text_encoder", "text_encoder_2.": "text_encoder_2"}
SDXL_MARKERS = ("lora_te1_", "lora_te2_", "text_encoder_2.")
TAG = re.compile(r"<lora:([^:>]+)(?::([^:>]*))?(?::([^:>]*))?>")


class LoraError(ModelLoadError):
    """A LoRA file that cannot be read or does not fit the loaded model."""


@dataclass(frozen=True)
class LoraLayer:
    component: str          # "unet", "text_encoder" or (SDXL's bigG) "text_encoder_2"
    module: str             # the module's path in that component, diffusers / transformers names
    down: torch.Tensor      # (rank, in, *kernel)
    up: torch.Tensor        # (out, rank, 1, 1) or (out, rank)
    alpha: float | None

    def delta(self, weight_shape: torch.Size) -> torch.Tensor:
        """up @ down * alpha / rank, shaped like the patched weight (linear, 1x1 or k x k conv)."""
        rank = self.down.shape[0]
        scale = 1.0 if self.alpha is None else self.alpha / rank
        product = self.up.flatten(1).float() @ self.down.flatten(1).float()
        if product.numel() != weight_shape.numel():
            raise LoraError(f"LoRA layer {self.module}: {tuple(self.up.shape)} x {tuple(self.down.shape)} does not "
                            f"fit a weight of shape {tuple(weight_shape)} (a LoRA made for another model?)")
        return (product * scale).reshape(weight_shape)


def _kohya_names(model: torch.nn.Module, prefix: str) -> dict[str, str]:
    """kohya's flattened name of every weight-carrying module -> its dotted path."""
    return {prefix + name.replace(".", "_"): name for name, m in model.named_modules()
            if isinstance(getattr(m, "weight", None), torch.Tensor)}


def _kohya_unet_names(unet: torch.nn.Module) -> dict[str, str]:
    """The UNet's kohya names in diffusers' module paths and in LDM / SGM's -> the diffusers path."""
    names = _kohya_names(unet, "lora_unet_")
    config = unet.config
    up_attention = {i for i, kind in enumerate(config.up_block_types) if kind.startswith("CrossAttn")}
    for kohya_name, path in list(names.items()):
        try:
            ldm = unet_key(path + ".weight", config.layers_per_block, up_attention).removesuffix(".weight")
        except KeyError:
            continue
        names.setdefault("lora_unet_" + ldm.replace(".", "_"), path)
    return names


def read_lora(path: Path, components: dict[str, torch.nn.Module]) -> list[LoraLayer]:
    """The layers of a LoRA file, matched to the modules of this model (`components`: "unet", "text_encoder"
    and for SDXL "text_encoder_2", as PEFT names them). Unknown keys are an error only when nothing at all
    matches (then it is not a LoRA for this model)."""
    path = Path(path)
    try:
        source = open_tensors(path)
        tensors = {k: source.get(k) for k in source.keys()}
    except ModelLoadError as e:
        raise LoraError(f"LoRA {path.name}: {e}") from e
    sdxl_model, sdxl_lora = "text_encoder_2" in components, any(k.startswith(SDXL_MARKERS) for k in tensors)
    if sdxl_lora != sdxl_model or (sdxl_model and any(k.startswith("lora_te_") for k in tensors)):
        made_for, loaded = ("SDXL", "an SD1.x / SD2.x") if not sdxl_model else ("SD1.x / SD2.x", "an SDXL")
        raise LoraError(f"{path.name} is a LoRA made for {made_for} models; the loaded model is {loaded} one")
    kohya = _kohya_unet_names(components["unet"])
    for prefix, component in KOHYA_PREFIXES.items():
        if component != "unet" and component in components:
            kohya |= _kohya_names(components[component], prefix + "text_model_")
    layers, seen = [], set()
    for key in tensors:
        base, kind = _split(key)
        if kind is None or base in seen:
            continue
        seen.add(base)
        down_key, up_key = (("lora_down.weight", "lora_up.weight") if kind == "kohya" else
                            ("lora_A.weight", "lora_B.weight"))
        if f"{base}.{down_key}" not in tensors or f"{base}.{up_key}" not in tensors:
            raise LoraError(f"LoRA {path.name}: {base} lacks {down_key} or {up_key}")
        component, module = _target(base, kind, kohya)
        if module is None or component not in components:
            continue
        alpha = tensors.get(f"{base}.alpha")
        layers.append(LoraLayer(component, module, tensors[f"{base}.{down_key}"], tensors[f"{base}.{up_key}"],
                                None if alpha is None else float(alpha)))
    if not layers:
        raise LoraError(f"{path.name} is not a LoRA for this model: none of its {len(seen)} layers name a layer "
                        "of the loaded UNet or text encoders")
    return layers


def _split(key: str) -> tuple[str, str | None]:
    for suffix, kind in ((".lora_down.weight", "kohya"), (".lora_A.weight", "peft")):
        if key.endswith(suffix):
            return key[: -len(suffix)], kind
    return key, None


def _target(base: str, kind: str, kohya: dict[str, str]) -> tuple[str, str | None]:
    if kind == "kohya":
        component = next((c for p, c in KOHYA_PREFIXES.items() if base.startswith(p)), "unet")
        return component, kohya.get(base)
    for prefix, component in PEFT_PREFIXES.items():
        if base.startswith(prefix):
            module = base[len(prefix):]
            return component, module.removeprefix("text_model.") if component != "unet" else module
    return "unet", None


def parse_lora_tags(prompt: str) -> tuple[str, list[tuple[str, float, float]]]:
    """A1111's extra-network syntax: `<lora:name>`, `<lora:name:0.8>` or `<lora:name:te:unet>`.
    Returns the prompt without the tags and (name, text encoder strength, UNet strength) per tag."""
    found = []
    for match in TAG.finditer(prompt):
        name, first, second = match.group(1).strip(), match.group(2), match.group(3)
        try:
            te = float(first) if first not in (None, "") else 1.0
            unet = float(second) if second not in (None, "") else te
        except ValueError:
            raise LoraError(f"{match.group(0)}: the strength must be a number, as in <lora:{name}:0.8>") from None
        found.append((name, te, unet))
    return TAG.sub("", prompt), found


class LoraPatcher:
    """Adds LoRA deltas to a model's weights in place, remembering the originals for an exact restore."""

    def __init__(self, components: dict[str, torch.nn.Module]):
        self.components = components
        self.backup: dict[tuple[str, str], torch.Tensor] = {}
        self.applied: tuple = ()

    def apply(self, loras: list[tuple[list[LoraLayer], float, float]], key: tuple) -> bool:
        """Patch with (layers, text encoder strength, UNet strength) per LoRA; `key` names this set, so
        asking for the set already applied costs nothing. Returns whether the weights changed."""
        if key == self.applied:
            return False
        self.restore()
        deltas: dict[tuple[str, str], torch.Tensor] = {}
        for layers, te_strength, unet_strength in loras:
            for layer in layers:
                strength = unet_strength if layer.component == "unet" else te_strength
                weight = self._weight(layer.component, layer.module)
                target = (layer.component, layer.module)
                delta = layer.delta(weight.shape) * strength
                deltas[target] = deltas[target] + delta if target in deltas else delta
        for (component, module), delta in deltas.items():
            weight = self._weight(component, module)
            self.backup[(component, module)] = weight.detach().clone()
            weight.data = (weight.float() + delta.to(weight.device)).to(weight.dtype)
        self.applied = key
        return True

    def restore(self) -> bool:
        for (component, module), original in self.backup.items():
            self._weight(component, module).data = original
        changed = bool(self.backup) or bool(self.applied)
        self.backup, self.applied = {}, ()
        return changed

    def _weight(self, component: str, module: str) -> torch.Tensor:
        return self.components[component].get_submodule(module).weight
