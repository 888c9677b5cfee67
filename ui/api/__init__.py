"""AUTOMATIC1111-compatible REST API, served with --api."""
from .routes import create_api

__all__ = ["create_api"]
