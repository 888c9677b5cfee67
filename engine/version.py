"""The project's version, written into every infotext."""
__version__ = "0.1.0"
