"""The app's loaded model: one at a time, loaded in the background, swapped only when a new one loads cleanly."""
import json
import threading
from pathlib import Path

from engine import Device, EngineError, GenerationRequest, GenerationResult, Pipeline, load_pipeline
from engine.loading.catalog import list_checkpoints

STARTER_NAME = "starter"
DEMO_NOTE = ("This is the small built-in demo model: 64x64 pictures of coloured shapes (circle, square, triangle, "
             "star, ring, diamond) on a coloured background, trained by this project. For real pictures put Stable "
             "Diffusion 1.x/2.x checkpoints (.safetensors, .ckpt or diffusers folders) into models/Stable-diffusion "
             "and press Refresh in Models & Settings.")


class ModelState:
    def __init__(self, models_dir: Path, device: Device):
        self.models_dir = Path(models_dir)
        self.device = device
        self.pipeline: Pipeline | None = None
        self.status = "No model loaded yet."
        self.loading: str | None = None
        self._lock = threading.Lock()          # one load or generation at a time

    @property
    def checkpoint_dir(self) -> Path:
        return self.models_dir / "Stable-diffusion"

    @property
    def is_demo(self) -> bool:
        return self.pipeline is not None and self.pipeline.source.name == STARTER_NAME

    def checkpoint_names(self) -> list[str]:
        return [str(p.relative_to(self.checkpoint_dir)) for p in list_checkpoints(self.checkpoint_dir)]

    def default_checkpoint(self) -> str | None:
        names = self.checkpoint_names()
        return STARTER_NAME if STARTER_NAME in names else (names[0] if names else None)

    def resolve(self, name: str) -> Path:
        """A checkpoint name from the list -> its path; names cannot leave the checkpoint folder."""
        root = self.checkpoint_dir.resolve()
        path = (root / name).resolve()
        if root not in path.parents:
            raise EngineError(f"{name!r} is not inside {self.checkpoint_dir}")
        return path

    def expected_size(self) -> int:
        """Native picture size of the loaded (or loading) model; 512 when unknown, as for SD1.x."""
        if self.pipeline is not None:
            return self.pipeline.native_size
        name = self.loading or self.default_checkpoint()
        try:
            folder = self.resolve(name)
            unet = json.loads((folder / "unet" / "config.json").read_text())
            vae = json.loads((folder / "vae" / "config.json").read_text())
            return unet["sample_size"] * 2 ** (len(vae["block_out_channels"]) - 1)
        except (EngineError, OSError, KeyError, TypeError, ValueError):
            return 512

    def load(self, name: str) -> str:
        """Load a checkpoint chosen by name in the UI; on failure keep the current model and say why."""
        try:
            path = self.resolve(name)
        except EngineError as e:
            self.status = str(e)
            return self.status
        return self.load_path(path)

    def load_path(self, path: Path) -> str:
        """Load a checkpoint file or folder (the --ckpt flag may point anywhere). Returns the status line."""
        with self._lock:
            self.loading = Path(path).name
            try:
                self.pipeline = load_pipeline(path, self.device)
                self.status = f"Loaded {self.pipeline.summary()}"
            except (EngineError, FileNotFoundError) as e:
                kept = f" Still using {self.pipeline.name}." if self.pipeline else ""
                self.status = f"Load failed: {e}.{kept}"
            finally:
                self.loading = None
            return self.status

    def load_in_background(self, path: Path) -> threading.Thread:
        self.loading = Path(path).name
        self.status = f"Loading {Path(path).name} ..."
        thread = threading.Thread(target=self.load_path, args=(path,), daemon=True)
        thread.start()
        return thread

    def generate(self, request: GenerationRequest, progress=None, should_stop=None) -> GenerationResult:
        with self._lock:
            if self.pipeline is None:
                raise EngineError("No model is loaded: put a checkpoint into models/Stable-diffusion and load it in "
                                  "Models & Settings.")
            return self.pipeline.generate(request, progress, should_stop)
