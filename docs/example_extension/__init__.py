"""A tiny extension: copy this folder to extensions/<name>/ and restart; "luma_edges" appears in the canny tab.

An extension is a folder with an __init__.py that defines register(api); api.add_preprocessor() adds a
ControlNet preprocessor. run(image, resolution, threshold_a, threshold_b, weights_dir) gets an RGB uint8
array and returns the control map (uint8, grey or RGB).
"""
import numpy as np

from extensions import Preprocessor, Slider


def luma_edges(image, resolution, level, b=None, weights_dir=None):
    luma = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    dx, dy = np.abs(np.diff(luma, axis=1, append=luma[:, -1:])), np.abs(np.diff(luma, axis=0, append=luma[-1:]))
    return np.where(np.maximum(dx, dy) > level, 255, 0).astype(np.uint8)


def register(api):
    api.add_preprocessor(Preprocessor("luma_edges", ("canny",), luma_edges,
                                      threshold_a=Slider("Edge threshold", 1, 255, 40)))
