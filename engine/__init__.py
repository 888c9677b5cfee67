"""The latent-diffusion engine: models, checkpoint loading, sampling and pipelines. No UI imports here."""
from .devices import Device
from .errors import (CorruptCheckpointError, EngineError, MissingKeysError, ModelLoadError, UnsafePickleError,
                     UnsupportedArchitectureError, WrongFileTypeError)
from .pipeline import Pipeline, load_pipeline
from .request import GenerationRequest, GenerationResult, InvalidRequestError
from .version import __version__
from .zero_shot import ZeroShotEdit

__all__ = ["CorruptCheckpointError", "Device", "EngineError", "GenerationRequest", "GenerationResult",
           "InvalidRequestError", "MissingKeysError", "ModelLoadError", "Pipeline", "UnsafePickleError",
           "UnsupportedArchitectureError", "WrongFileTypeError", "ZeroShotEdit", "__version__", "load_pipeline"]
