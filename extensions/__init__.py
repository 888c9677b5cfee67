"""Extensions: plug-ins found at start-up, each a folder `extensions/<name>/` whose `__init__.py` defines

    def register(api: ExtensionAPI) -> None:
        api.add_preprocessor(Preprocessor("my_edges", modes=("canny",), run=my_edges))

The built-in ControlNet annotators (extensions/annotators) register through this same API. A preprocessor's
`run(image, resolution, threshold_a, threshold_b, weights_dir)` takes an RGB uint8 array (H, W, 3) and
returns the control map as a uint8 array (H', W') or (H', W', 3). Files it needs (`weights`) are looked up
in the annotators folder; when one is missing the UI names it instead of running.
"""
import importlib.util
import logging
import math
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
MIN_RESOLUTION, MAX_RESOLUTION = 64, 2048     # the processor resolution, as the extension's slider
MAX_MAP_SIDE = 8192                            # the longest side the short side's scaling may give a map
CONTROL_MODES = ("canny", "mlsd", "scribble", "softedge", "openpose", "seg", "depth", "normal", "lineart", "shuffle")


@dataclass(frozen=True)
class Slider:
    label: str
    minimum: float
    maximum: float
    value: float
    step: float = 1


@dataclass(frozen=True)
class Preprocessor:
    name: str
    modes: tuple[str, ...]
    run: Callable[..., np.ndarray]
    weights: tuple[str, ...] = ()            # file names in the annotators folder
    threshold_a: Slider | None = None
    threshold_b: Slider | None = None
    note: str = ""                           # shown beside the choice, e.g. "OpenCV fallback"
    weights_source: str = "A1111's annotator file names"   # how to get the weights, said when they are missing
    alternative_weights: tuple[str, ...] = ()  # another set of files it runs on instead, when they are all there

    def missing(self, weights_dir: Path) -> list[str]:
        if self.alternative_weights and not missing_in(weights_dir, self.alternative_weights):
            return []
        return missing_in(weights_dir, self.weights)


def missing_in(folder: Path, names) -> list[str]:
    """The files of `names` that are not in `folder`."""
    return [name for name in names if not (Path(folder) / name).is_file()]


class AnnotatorError(Exception):
    """A preprocessor cannot run on what it was given; the message says why and what to do."""


class AnnotatorUnavailable(AnnotatorError):
    """A preprocessor cannot run: its weights are missing (the message names the files and the folder)."""


class AnnotatorInputError(AnnotatorError, ValueError):
    """A resolution or threshold out of its range, or a picture whose shape would make a map too large."""


def check_inputs(p: Preprocessor, image: np.ndarray, resolution: int, a: float | None, b: float | None) -> None:
    if not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
        raise AnnotatorInputError(f"{p.name}: the processor resolution must be between {MIN_RESOLUTION} and "
                                  f"{MAX_RESOLUTION}, not {resolution}")
    for slider, value in ((p.threshold_a, a), (p.threshold_b, b)):
        if slider is not None and value is not None and not (math.isfinite(value)
                                                             and slider.minimum <= value <= slider.maximum):
            raise AnnotatorInputError(f"{p.name}: {slider.label} must be between {slider.minimum:g} and "
                                      f"{slider.maximum:g}, not {value}")
    h, w = image.shape[:2]
    if min(h, w) < 1 or max(h, w) * resolution / min(h, w) > MAX_MAP_SIDE:
        raise AnnotatorInputError(f"{p.name}: a {w}x{h} picture at processor resolution {resolution} would make a "
                                  f"map over {MAX_MAP_SIDE} pixels long; crop the picture or lower the resolution")


class ExtensionAPI:
    """What an extension may register. One instance per app."""

    def __init__(self, weights_dir: Path):
        self.weights_dir = Path(weights_dir)
        self.preprocessors: dict[str, Preprocessor] = {}
        self.loaded: list[str] = []
        self.failed: dict[str, str] = {}

    def add_preprocessor(self, preprocessor: Preprocessor) -> None:
        unknown = set(preprocessor.modes) - set(CONTROL_MODES)
        if unknown:
            raise ValueError(f"{preprocessor.name}: unknown ControlNet modes {sorted(unknown)}")
        self.preprocessors[preprocessor.name] = preprocessor

    def for_mode(self, mode: str) -> list[Preprocessor]:
        return [p for p in self.preprocessors.values() if mode in p.modes]

    def availability(self, name: str) -> str:
        """"" when the preprocessor can run, else what to put where."""
        missing = self.preprocessors[name].missing(self.weights_dir)
        if not missing:
            return ""
        return f"{name} needs {', '.join(missing)} in {self.weights_dir} ({self.preprocessors[name].weights_source})."

    def run(self, name: str, image: np.ndarray, resolution: int = 512, threshold_a: float | None = None,
            threshold_b: float | None = None) -> np.ndarray:
        p = self.preprocessors[name]
        problem = self.availability(name)
        if problem:
            raise AnnotatorUnavailable(problem)
        a = threshold_a if threshold_a is not None else (p.threshold_a.value if p.threshold_a else None)
        b = threshold_b if threshold_b is not None else (p.threshold_b.value if p.threshold_b else None)
        check_inputs(p, image, int(resolution), a, b)
        result = p.run(np.ascontiguousarray(image[..., :3]), int(resolution), a, b, self.weights_dir)
        return np.ascontiguousarray(result.astype(np.uint8))


def load_extensions(api: ExtensionAPI, folder: Path = HERE) -> ExtensionAPI:
    """Import every extension folder (the built-in annotators first) and call its register(api).
    A broken extension is reported in `api.failed` and skipped; the app still starts."""
    folders = sorted(p for p in Path(folder).iterdir() if (p / "__init__.py").is_file())
    folders.sort(key=lambda p: p.name != "annotators")
    for path in folders:
        name = f"studio_extension_{path.name}"
        try:
            spec = importlib.util.spec_from_file_location(name, path / "__init__.py",
                                                          submodule_search_locations=[str(path)])
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
            module.register(api)
            api.loaded.append(path.name)
        except Exception as e:   # a user's extension must not stop the app
            api.failed[path.name] = f"{type(e).__name__}: {e}"
            log.error("extension %s failed to load\n%s", path.name, traceback.format_exc())
    return api
