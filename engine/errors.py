"""Errors a user can cause. Each names the file and says what to do; the UI and API show the message."""


class EngineError(Exception):
    """Base of every error the engine raises on purpose."""


class ModelLoadError(EngineError):
    """A model file or folder could not be loaded; the previously loaded model stays in service."""


class UnsupportedArchitectureError(ModelLoadError):
    """The checkpoint is a known family this engine does not run yet (SDXL, SD3, Flux, ...)."""


class CorruptCheckpointError(ModelLoadError):
    """The file is truncated, empty or damaged."""


class WrongFileTypeError(ModelLoadError):
    """The file is not a model at all (an HTML page, a text file, an image ...)."""


class MissingKeysError(ModelLoadError):
    """The checkpoint lacks tensors the detected architecture needs."""


class UnsafePickleError(ModelLoadError):
    """A .ckpt/.pt pickle wants to run code or build objects beyond plain tensors and containers."""


class NumericalError(EngineError):
    """A generation produced NaN or infinite values (an overflow at reduced precision, a broken model file)."""
