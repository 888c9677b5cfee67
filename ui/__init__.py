"""Gradio user interface: builds requests for the engine and shows results. Never touches torch internals."""
