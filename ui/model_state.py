"""The app's loaded model: one at a time, swapped only when the new one loads cleanly."""
import threading
from pathlib import Path

from engine import Device, EngineError, Pipeline, load_pipeline
from engine.loading.catalog import list_checkpoints


class ModelState:
    def __init__(self, models_dir: Path, device: Device):
        self.models_dir = Path(models_dir)
        self.device = device
        self.pipeline: Pipeline | None = None
        self.status = "No model loaded yet."
        self._lock = threading.Lock()

    @property
    def checkpoint_dir(self) -> Path:
        return self.models_dir / "Stable-diffusion"

    def checkpoint_names(self) -> list[str]:
        return [str(p.relative_to(self.checkpoint_dir)) for p in list_checkpoints(self.checkpoint_dir)]

    def resolve(self, name: str) -> Path:
        """A checkpoint name from the list -> its path; names cannot leave the checkpoint folder."""
        root = self.checkpoint_dir.resolve()
        path = (root / name).resolve()
        if root not in path.parents:
            raise EngineError(f"{name!r} is not inside {self.checkpoint_dir}")
        return path

    def load(self, name: str) -> str:
        """Load a checkpoint chosen by name in the UI; on failure keep the current model and say why."""
        try:
            path = self.resolve(name)
        except EngineError as e:
            return str(e)
        return self.load_path(path)

    def load_path(self, path: Path) -> str:
        """Load a checkpoint file or folder (the --ckpt flag may point anywhere). Returns the status line."""
        with self._lock:
            try:
                self.pipeline = load_pipeline(path, self.device)
                self.status = f"Loaded {self.pipeline.summary()}"
            except (EngineError, FileNotFoundError) as e:
                kept = f" Still using {self.pipeline.name}." if self.pipeline else ""
                self.status = f"Load failed: {e}.{kept}"
            return self.status
