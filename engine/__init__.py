"""The latent-diffusion engine: models, checkpoint loading, sampling and pipelines. No UI imports here."""
from .devices import Device
from .errors import (CorruptCheckpointError, EngineError, MissingKeysError, ModelLoadError, UnsafePickleError,
                     UnsupportedArchitectureError, WrongFileTypeError)
from .pipeline import Pipeline, load_pipeline

__all__ = ["CorruptCheckpointError", "Device", "EngineError", "MissingKeysError", "ModelLoadError", "Pipeline",
           "UnsafePickleError", "UnsupportedArchitectureError", "WrongFileTypeError", "load_pipeline"]
