"""The model folders in A1111's layout, and what each holds. A file or folder whose real place is outside its
folder (a link leading out) is not listed, so nothing chosen by name is ever read from elsewhere; linking the
whole folder (models/Lora -> /data/loras) is fine."""
from pathlib import Path

from .tensor_files import PICKLE_SUFFIXES, SAFETENSORS_SUFFIXES

CHECKPOINT_SUFFIXES = SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES


def _inside(folder: Path, found: list[Path]) -> list[Path]:
    root = folder.resolve()
    return [p for p in found if root in p.resolve().parents]


def list_checkpoints(folder: Path) -> list[Path]:
    """Checkpoint files and diffusers folders under `folder` (recursively, like A1111), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in CHECKPOINT_SUFFIXES
             and not any(parent.joinpath("model_index.json").is_file() for parent in p.parents)]
    found += [p.parent for p in folder.rglob("model_index.json")]
    return sorted(_inside(folder, found), key=lambda p: str(p.relative_to(folder)).lower())


def list_vaes(folder: Path) -> list[Path]:
    """Separate VAE files and diffusers VAE folders (a config.json beside the weights) in models/VAE."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in CHECKPOINT_SUFFIXES
             and not p.parent.joinpath("config.json").is_file()]
    found += [p.parent for p in folder.rglob("config.json")]
    return sorted(_inside(folder, found), key=lambda p: str(p.relative_to(folder)).lower())


def list_controlnets(folder: Path) -> list[Path]:
    """ControlNet files (original or diffusers single files) and diffusers ControlNet folders in models/ControlNet."""
    return list_vaes(folder)     # the same layout: weight files, or folders with a config.json


def list_loras(folder: Path) -> list[Path]:
    """LoRA files under models/Lora (recursively, like A1111), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in CHECKPOINT_SUFFIXES]
    return sorted(_inside(folder, found), key=lambda p: str(p.relative_to(folder)).lower())
