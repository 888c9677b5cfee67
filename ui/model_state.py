"""The app's loaded model: one at a time, loaded in the background, swapped only when a new one loads cleanly."""
import dataclasses
import functools
import json
import random
import threading
from pathlib import Path

from engine import Device, EngineError, GenerationRequest, GenerationResult, Pipeline, load_pipeline
from engine.loading.catalog import list_checkpoints, list_controlnets, list_loras, list_vaes
from engine.embeddings import EmbeddingLibrary
from engine.wildcards import expand, is_dynamic
from engine.loading.controlnet import controlnet_kind, load_controlnet
from engine.upscaler_models import ModelUpscalers
from engine.upscalers import LATENT_UPSCALE_MODES, PIXEL_UPSCALERS

STARTER_NAME = "starter"
AUTOMATIC_VAE = "Automatic"
DEMO_NOTE = ("This is the small built-in demo model: 64x64 pictures of coloured shapes (circle, square, triangle, "
             "star, ring, diamond) on a coloured background, trained by this project. For real pictures put Stable "
             "Diffusion 1.x/2.x or SDXL checkpoints (.safetensors, .ckpt or diffusers folders) into models/Stable-diffusion "
             "and press Refresh in Models & Settings.")


class ModelState:
    def __init__(self, models_dir: Path, device: Device, embeddings_dir: Path | None = None,
                 wildcards_dir: Path | None = None):
        self.models_dir = Path(models_dir)
        self.wildcards_dir = Path(wildcards_dir) if wildcards_dir else self.models_dir.parent / "wildcards"
        # textual inversion embeddings: A1111's embeddings/ beside the models folder
        self.embeddings = EmbeddingLibrary(embeddings_dir or self.models_dir.parent / "embeddings")
        self.device = device
        self.pipeline: Pipeline | None = None
        self.status = "No model loaded yet."
        self.loading: str | None = None
        self.vae_choice = AUTOMATIC_VAE        # applied to every model loaded
        self.loads = 0                         # bumps on each successful load (the UI follows the native size)
        self._lock = threading.Lock()          # one load or generation at a time
        self._controlnets: dict[Path, object] = {}   # loaded ControlNets by file, the two most recent
        self._side: dict[Path, Pipeline] = {}        # one more checkpoint a tab asked for by name (Consistency)
        self._kinds: dict[tuple, object] = {}        # ControlNet (file, mtime) -> (SDXL?, context width)
        self._refiner: dict[Path, Pipeline] = {}     # the refiner last asked for, kept loaded beside the model
        self.upscalers = ModelUpscalers(self.models_dir, device.device)   # ESRGAN & co., loaded when used

    @property
    def checkpoint_dir(self) -> Path:
        return self.models_dir / "Stable-diffusion"

    @property
    def is_demo(self) -> bool:
        return self.pipeline is not None and self.pipeline.source.name == STARTER_NAME

    @property
    def vae_dir(self) -> Path:
        return self.models_dir / "VAE"

    def vae_names(self) -> list[str]:
        return [AUTOMATIC_VAE] + [str(p.relative_to(self.vae_dir)) for p in list_vaes(self.vae_dir)]

    @property
    def lora_dir(self) -> Path:
        return self.models_dir / "Lora"

    def lora_names(self) -> list[str]:
        return [p.stem for p in list_loras(self.lora_dir)]

    def upscaler_names(self, latent: bool = True) -> list[str]:
        """A1111's upscaler list: the latent modes (`latent`), None, Lanczos, Nearest, then the model files in
        models/ESRGAN, RealESRGAN, SwinIR, DAT and HAT."""
        return [*(LATENT_UPSCALE_MODES if latent else ()), *PIXEL_UPSCALERS, *self.upscalers.names()]

    @property
    def controlnet_dir(self) -> Path:
        return self.models_dir / "ControlNet"

    def controlnet_names(self) -> list[str]:
        """The ControlNets in models/ControlNet made for the loaded model's family (SDXL ones only with an SDXL
        checkpoint, SD1.x ones only with SD1.x); files whose family cannot be read from a header are listed."""
        found = list_controlnets(self.controlnet_dir)
        if self.pipeline is not None:
            unet = self.pipeline.unet.config
            wanted = (unet.is_sdxl, unet.cross_attention_dim)
            found = [p for p in found if self._controlnet_kind(p) in (None, wanted)]
        return [str(p.relative_to(self.controlnet_dir)) for p in found]

    def _controlnet_kind(self, path: Path):
        stamp = (path, path.stat().st_mtime_ns)
        if stamp not in self._kinds:
            self._kinds[stamp] = controlnet_kind(path)
        return self._kinds[stamp]

    def controlnet(self, name: str):
        """The ControlNet of that name in models/ControlNet, loaded once (on the model's device and dtype)."""
        path = self.resolve(name, self.controlnet_dir)
        if path not in self._controlnets:
            model = load_controlnet(path, self.device.dtype, self.device.device)
            while len(self._controlnets) >= 2:
                self._controlnets.pop(next(iter(self._controlnets)))
            self._controlnets[path] = model
        return self._controlnets[path]

    def checkpoint_names(self) -> list[str]:
        return [str(p.relative_to(self.checkpoint_dir)) for p in list_checkpoints(self.checkpoint_dir)]

    def default_checkpoint(self) -> str | None:
        names = self.checkpoint_names()
        return STARTER_NAME if STARTER_NAME in names else (names[0] if names else None)

    def resolve(self, name: str, folder: Path | None = None) -> Path:
        """A model name from a list -> its path; names cannot leave their folder (the checkpoint one by default)."""
        folder = folder or self.checkpoint_dir
        root = folder.resolve()
        path = (root / name).resolve()
        if root not in path.parents:
            raise EngineError(f"{name!r} is not inside {folder}")
        return path

    def set_vae(self, name: str) -> str:
        """Choose the VAE by name from the VAE list ("Automatic": each checkpoint's own); applied now and to
        later loads."""
        names = self.vae_names()
        if name not in names:
            return f"VAE {name} not used: it is not in {self.vae_dir} (have: {', '.join(names)})"
        with self._lock:
            try:
                path = None if name == AUTOMATIC_VAE else self.resolve(name, self.vae_dir)
                if self.pipeline is not None:
                    self.pipeline.set_vae(path)
            except (EngineError, FileNotFoundError) as e:
                return f"VAE {name} not used: {e}"
            self.vae_choice = name
            return f"VAE: {name}" + (" (no model loaded yet)" if self.pipeline is None else "")

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
                pipeline = self._open(path)
                self.status = f"Loaded {pipeline.summary()}"
                if self.vae_choice != AUTOMATIC_VAE:
                    try:
                        pipeline.set_vae(self.resolve(self.vae_choice, self.vae_dir))
                    except (EngineError, FileNotFoundError) as e:
                        self.status += f" (VAE {self.vae_choice} not used: {e})"
                self.pipeline = pipeline
                self.loads += 1
            except (EngineError, FileNotFoundError) as e:
                kept = f" Still using {self.pipeline.name}." if self.pipeline else ""
                self.status = f"Load failed: {e}.{kept}"
            finally:
                self.loading = None
            return self.status

    def _open(self, path: Path) -> Pipeline:
        pipeline = load_pipeline(path, self.device)
        pipeline.loras.folder = self.lora_dir
        pipeline.tiny_vae_folder = self.models_dir / "VAE-approx"
        pipeline.prompts.embeddings = self.embeddings
        return pipeline

    def pipeline_for(self, checkpoint: str | None) -> Pipeline:
        """The loaded model, or - for a tab that names another checkpoint - that one, kept loaded beside it."""
        with self._lock:
            return self._pipeline_for(checkpoint)

    def _pipeline_for(self, checkpoint: str | None) -> Pipeline:
        if self.pipeline is None and checkpoint is None:
            raise EngineError("No model is loaded: put a checkpoint into models/Stable-diffusion and load it in "
                              "Models & Settings.")
        if checkpoint is None:
            return self.pipeline
        return self._opened(checkpoint, self._side)

    def _opened(self, checkpoint: str, cache: dict) -> Pipeline:
        """The loaded model if it is `checkpoint`, else that checkpoint opened into `cache` (which keeps one)."""
        path = self.resolve(checkpoint)
        if self.pipeline is not None and self.pipeline.source.resolve() == path:
            return self.pipeline
        if path not in cache:
            cache.clear()
            try:
                cache[path] = self._open(path)
            except FileNotFoundError as e:
                raise EngineError(f"{checkpoint} not found in {self.checkpoint_dir}: {e}") from e
        return cache[path]

    def load_in_background(self, path: Path) -> threading.Thread:
        self.loading = Path(path).name
        self.status = f"Loading {Path(path).name} ..."
        thread = threading.Thread(target=self.load_path, args=(path,), daemon=True)
        thread.start()
        return thread

    def generate(self, request: GenerationRequest, progress=None, should_stop=None, should_skip=None,
                 checkpoint: str | None = None, refiner: str | None = None) -> GenerationResult:
        """Run a request on the loaded model, or on `checkpoint` when a tab names its own; `refiner` names the
        checkpoint that takes over at request.refiner_switch_at (kept loaded beside the model for the next run);
        a hires fix naming its own checkpoint runs its second pass there."""
        with self._lock:
            pipeline = self._pipeline_for(checkpoint)
            refining = self._opened(refiner, self._refiner) if refiner else None
            hires = request.hires.checkpoint if request.hires is not None else None
            second = self._opened(hires, self._side) if hires else None   # the hires fix's own checkpoint
            run = functools.partial(pipeline.generate, should_stop=should_stop, should_skip=should_skip,
                                    refiner=refining, hires_model=second, upscalers=self.upscalers.steps())
            if is_dynamic(request.prompt) or is_dynamic(request.negative_prompt):
                return self._dynamic(request, pipeline, run, progress, should_stop)
            return run(request, progress)

    def _dynamic(self, request: GenerationRequest, pipeline: Pipeline, run, progress, should_stop) -> GenerationResult:
        """A prompt with wildcards or {a|b} variants: each picture its own prompt, drawn by a generator seeded
        with the run's seed (picture i: seed + i, its i-th prompt), so a seed repeats its pictures."""
        request.validate()
        seed = request.seed if request.seed >= 0 else random.randrange(4294967294)
        subseed = request.subseed if request.subseed >= 0 else random.randrange(4294967294)
        count = request.batch_size * request.batch_count
        prompts = expand(request.prompt, count, seed, self.wildcards_dir)
        negatives = (expand(request.negative_prompt, count, seed, self.wildcards_dir)
                     if is_dynamic(request.negative_prompt) else [request.negative_prompt] * count)
        singles = [dataclasses.replace(request, prompt=p, negative_prompt=n, batch_size=1, batch_count=1,
                                       seed=seed + (i if request.subseed_strength == 0 else 0), subseed=subseed + i)
                   for i, (p, n) in enumerate(zip(prompts, negatives))]
        totals = [pipeline.job_steps(single) for single in singles]
        result = GenerationResult([], [], [], [])
        for i, single in enumerate(singles):
            if should_stop is not None and should_stop():
                result.interrupted = True
                break
            before = sum(totals[:i])
            done = run(single, None if progress is None else
                       (lambda d, _, x, before=before: progress(before + d, sum(totals), x)))
            for name in ("images", "seeds", "subseeds", "infotexts", "latents"):
                getattr(result, name).extend(getattr(done, name))
            if done.interrupted:
                result.interrupted = True
                break
        return result
