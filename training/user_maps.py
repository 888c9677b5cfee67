"""Control maps made the ways users make them, for training the starter ControlNets and for measuring them.

A user does not hand the app the generator's exact one-pixel edges: they upload a photo (a larger picture of
the scene) and let a preprocessor find its edges at some processor resolution, or draw a thick wobbly scribble
on the scribble canvas, and the app fits that map to the 64-px picture (engine.control_map, as A1111 does).
Each function here returns the map at the preprocessor's resolution, before that fitting.
"""
import random

import cv2
import numpy as np
from PIL import Image, ImageDraw

from extensions.annotators import model_free
from training.scenes import SIZE, Scene, _outline, render, render_edges

EDGE_STYLES = ("exact", "canny", "scribble", "lineart", "softedge")


def _outline_points(shape, pixels: int, count: int = 64) -> list[np.ndarray]:
    """Closed outlines of a shape (two for a ring) as (count, 2) point arrays at `pixels` square."""
    kind, points = _outline(shape, 1)
    scale = pixels / SIZE
    if kind == "polygon":
        corners = np.asarray(points, np.float64) * scale
        closed = np.vstack([corners, corners[:1]])
        lengths = np.linalg.norm(np.diff(closed, axis=0), axis=1)
        along = np.linspace(0, lengths.sum(), count, endpoint=False)
        cumulative = np.concatenate([[0], np.cumsum(lengths)])
        segment = np.searchsorted(cumulative, along, side="right") - 1
        t = ((along - cumulative[segment]) / lengths[segment])[:, None]
        return [closed[segment] * (1 - t) + closed[segment + 1] * t]
    x0, y0, x1, y1 = (v * scale for v in points)
    centre, radius = np.array([(x0 + x1) / 2, (y0 + y1) / 2]), (x1 - x0) / 2
    angles = np.linspace(0, 2 * np.pi, count, endpoint=False)
    circle = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    radii = [radius] if kind == "ellipse" else [radius, radius * 0.6]    # a ring: its outer and inner edge
    return [centre + circle * r for r in radii]


def hand_scribble(scene: Scene, rng: random.Random, pixels: int = 512) -> np.ndarray:
    """Black strokes on white as drawn on the scribble canvas: each outline traced by a wobbly hand with a brush
    of 1-5 % of the picture's side."""
    image = Image.new("L", (pixels, pixels), 255)
    draw = ImageDraw.Draw(image)
    width = max(2, round(pixels * rng.uniform(0.012, 0.05)))
    for shape in scene.shapes:
        for points in _outline_points(shape, pixels):
            phase = np.linspace(0, 2 * np.pi, len(points), endpoint=False)
            wobble = sum(rng.uniform(0, 0.012) * pixels * np.stack([np.sin(k * phase + rng.uniform(0, 6.3)),
                                                                     np.cos(k * phase + rng.uniform(0, 6.3))], 1)
                         for k in (2, 3, 5))
            traced = points + wobble
            draw.line([tuple(p) for p in np.vstack([traced, traced[:1]])], fill=0, width=width, joint="curve")
    return np.stack([np.asarray(image)] * 3, axis=2)


def soft_edges(scene: Scene, rng: random.Random, pixels: int = 256) -> np.ndarray:
    """Grey, blurred boundaries as soft-edge detectors (HED, PiDiNet) draw them."""
    edges = cv2.resize(np.asarray(render_edges(scene))[:, :, 0], (pixels, pixels), interpolation=cv2.INTER_NEAREST)
    soft = cv2.GaussianBlur(edges.astype(np.float32), (0, 0), pixels / SIZE * rng.uniform(0.6, 1.6))
    soft = (soft / max(soft.max(), 1e-6) * 255 * rng.uniform(0.7, 1.0)).clip(0, 255).astype(np.uint8)
    return np.stack([soft] * 3, axis=2)


def edge_map(style: str, scene: Scene, rng: random.Random) -> np.ndarray:
    """An edge-type map of the scene in one of EDGE_STYLES, at the resolution its maker works at (grey or RGB,
    as its preprocessor gives it: engine.control_map.fit_map takes both)."""
    if style == "exact":                 # the generator's own boundaries, 1-3 px
        edges = np.asarray(render_edges(scene))
        width = rng.randint(1, 3)
        return cv2.dilate(edges, np.ones((width, width), np.uint8)) if width > 1 else edges
    if style == "scribble":              # the scribble tab: black on white, through the "invert" preprocessor
        return model_free.invert(hand_scribble(scene, rng, rng.choice([256, 512])))
    photo_size = rng.choice([128, 256, 512])
    photo = np.asarray(render(scene, photo_size))
    resolution = rng.choice([r for r in (128, 256, 512) if r <= photo_size] or [photo_size])
    if style == "canny":
        low = rng.randint(50, 150)
        return model_free.canny(photo, resolution, low, min(255, 2 * low))
    if style == "lineart":
        return model_free.lineart_standard(photo, resolution)
    if style == "softedge":
        return soft_edges(scene, rng, resolution)
    raise ValueError(f"edge style must be one of {EDGE_STYLES}")
