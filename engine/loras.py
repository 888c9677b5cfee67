"""The LoRAs a prompt asks for with `<lora:name:strength>`: found by name in a folder, read once, patched in.

The weights stay patched while consecutive prompts ask for the same set (A1111 does the same), and are
restored exactly as soon as a prompt asks for another set or none.
"""
import hashlib
from pathlib import Path

from .loading.catalog import list_loras
from .loading.lora import LoraError, LoraPatcher, parse_lora_tags, read_lora


class PromptLoras:
    def __init__(self, components: dict, folder: Path | None = None):
        """`components`: the modules a LoRA may patch, by PEFT's names ("unet", "text_encoder",
        "text_encoder_2")."""
        self.components = components
        self.folder = folder
        self.patcher = LoraPatcher(components)
        self._files: dict[tuple, tuple] = {}    # (path, mtime) -> (layers, short hash) of the files used

    def available(self) -> list[Path]:
        return list_loras(self.folder) if self.folder else []

    def find(self, name: str) -> Path:
        files = self.available()
        for match in (lambda p: p.stem == name, lambda p: p.stem.lower() == name.lower()):
            found = next((p for p in files if match(p)), None)
            if found is not None:
                return found
        names = ", ".join(p.stem for p in files) or "none"
        raise LoraError(f"LoRA {name!r} not found in {self.folder or 'models/Lora'} (available: {names})")

    def apply(self, prompt: str) -> tuple[str, dict, bool]:
        """Patch the model for this prompt. Returns (prompt without tags, infotext fields, whether the
        text encoder's weights changed, so cached prompt encodings are stale)."""
        text, tags = parse_lora_tags(prompt)
        wanted, key, hashes = [], [], []
        for name, te, unet in tags:
            path = self.find(name)
            stamp = (str(path), path.stat().st_mtime_ns)
            if stamp not in self._files:
                self._files = {k: v for k, v in self._files.items() if k[0] != str(path)}
                self._files[stamp] = (read_lora(path, self.components), _short_hash(path))
            layers, short_hash = self._files[stamp]
            wanted.append((layers, te, unet))
            key.append((stamp, te, unet))
            hashes.append(f"{path.stem}: {short_hash}")
        changed = self.patcher.apply(wanted, tuple(key)) if wanted else self.patcher.restore()
        fields = {"Lora hashes": ", ".join(hashes)} if hashes else {}
        return text, fields, changed


def _short_hash(path: Path) -> str:
    """The first 12 hex digits of the file's sha256, as A1111's "Lora hashes" field."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]
