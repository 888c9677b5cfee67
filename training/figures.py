"""Simple figures for the pose ControlNet: a head and limbs drawn as coloured capsules in a random pose, with
the exact OpenPose skeleton map of each (OpenPose's 18 body keypoints, drawn with the limb colours and widths
of the openpose preprocessors, controlnet_aux's draw_bodypose).

A figure is its background colour, its own colour and 18 keypoints (fractions of the image, OpenPose's order:
nose, neck, right shoulder, elbow, wrist, left shoulder, elbow, wrist, right hip, knee, ankle, left hip, knee,
ankle, right eye, left eye, right ear, left ear). It faces the viewer, so its right side is on the picture's
left. Everything is a pure function of the random generator handed in, as in training.scenes.
"""
import math
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from training.scenes import BACKGROUND_WORDS, COLORS, SIZE, _article

FIGURE_WORDS = ["figure", "person", "human figure", "stick figure", "character"]
NECK, NOSE, R_SHOULDER, R_ELBOW, R_WRIST, L_SHOULDER, L_ELBOW, L_WRIST = 1, 0, 2, 3, 4, 5, 6, 7
R_HIP, R_KNEE, R_ANKLE, L_HIP, L_KNEE, L_ANKLE, R_EYE, L_EYE, R_EAR, L_EAR = range(8, 18)
LIMBS = [(R_SHOULDER, R_ELBOW), (R_ELBOW, R_WRIST), (L_SHOULDER, L_ELBOW), (L_ELBOW, L_WRIST),
         (R_HIP, R_KNEE), (R_KNEE, R_ANKLE), (L_HIP, L_KNEE), (L_KNEE, L_ANKLE), (R_SHOULDER, L_SHOULDER)]


@dataclass(frozen=True)
class Figure:
    background: str
    color: str
    keypoints: tuple            # 18 (x, y) pairs, fractions of the image
    unit: float                 # the body's length unit (a head's height), fraction of the image side


def _step(point, length: float, degrees_from_down: float) -> tuple:
    angle = math.radians(degrees_from_down)
    return point[0] + length * math.sin(angle), point[1] + length * math.cos(angle)


def random_figure(rng: random.Random) -> Figure:
    """A figure 45-90 % of the picture tall, anywhere it fits, arms and legs at random angles, leaning a little."""
    background = rng.choice(list(COLORS))
    color = rng.choice([c for c in COLORS if c != background])
    height = rng.uniform(0.45, 0.9)
    u = height / 7.0
    neck = (0.0, 0.0)
    points = [None] * 18
    points[NECK] = neck
    points[NOSE] = (rng.uniform(-0.2, 0.2) * u, -0.9 * u)
    for side, sign in ((0, -1), (1, 1)):         # right (picture's left), then left
        shoulder, hip = (sign * 0.9 * u, 0.1 * u), (sign * 0.5 * u, 2.8 * u)
        arm = sign * rng.uniform(-20, 170)            # upper arm: from along the body to overhead, outwards
        elbow = _step(shoulder, 1.3 * u, arm)
        wrist = _step(elbow, 1.2 * u, arm + sign * rng.uniform(-100, 100))
        thigh = sign * rng.uniform(-10, 55)
        knee = _step(hip, 1.7 * u, thigh)
        ankle = _step(knee, 1.6 * u, thigh + sign * rng.uniform(-40, 30))
        first = (R_SHOULDER, R_ELBOW, R_WRIST, R_HIP, R_KNEE, R_ANKLE) if side == 0 else \
                (L_SHOULDER, L_ELBOW, L_WRIST, L_HIP, L_KNEE, L_ANKLE)
        for index, point in zip(first, (shoulder, elbow, wrist, hip, knee, ankle)):
            points[index] = point
        nose = points[NOSE]
        points[R_EYE if side == 0 else L_EYE] = (nose[0] + sign * 0.22 * u, nose[1] - 0.2 * u)
        points[R_EAR if side == 0 else L_EAR] = (nose[0] + sign * 0.45 * u, nose[1] - 0.05 * u)
    lean = math.radians(rng.uniform(-15, 15))
    cos, sin = math.cos(lean), math.sin(lean)
    turned = [(x * cos - y * sin, x * sin + y * cos) for x, y in points]
    xs, ys = [p[0] for p in turned], [p[1] for p in turned]
    margin = 0.6 * u
    left, right = min(xs) - margin, max(xs) + margin
    top, bottom = min(ys) - margin, max(ys) + 0.2 * u
    dx = rng.uniform(-left, 1 - right) if right - left < 1 else 0.5 - (left + right) / 2
    dy = rng.uniform(-top, 1 - bottom) if bottom - top < 1 else 0.5 - (top + bottom) / 2
    return Figure(background, color, tuple((x + dx, y + dy) for x, y in turned), u)


def head(figure: Figure) -> tuple:
    """The head's centre and radius (fractions): around the eyes, a little above the nose."""
    nose, r_eye, l_eye = (figure.keypoints[i] for i in (NOSE, R_EYE, L_EYE))
    return ((r_eye[0] + l_eye[0]) / 2, (r_eye[1] + l_eye[1] + nose[1]) / 3), 0.55 * figure.unit


def render_figure(figure: Figure, pixels: int = SIZE) -> Image.Image:
    """The figure as coloured capsules (torso, arms, legs) and a round head, antialiased by drawing at 4x."""
    scale = 4 * pixels
    image = Image.new("RGB", (scale, scale), COLORS[figure.background])
    draw = ImageDraw.Draw(image)
    fill, width = COLORS[figure.color], 0.55 * figure.unit * scale
    px = lambda p: (p[0] * scale, p[1] * scale)

    def capsule(a, b, w):
        draw.line([px(a), px(b)], fill=fill, width=max(1, round(w)))
        for end in (a, b):
            x, y = px(end)
            draw.ellipse([x - w / 2, y - w / 2, x + w / 2, y + w / 2], fill=fill)

    k = figure.keypoints
    hips = ((k[R_HIP][0] + k[L_HIP][0]) / 2, (k[R_HIP][1] + k[L_HIP][1]) / 2)
    draw.polygon([px(k[R_SHOULDER]), px(k[L_SHOULDER]), px(k[L_HIP]), px(k[R_HIP])], fill=fill)
    capsule(k[NECK], hips, 1.2 * width)
    for a, b in LIMBS:
        capsule(k[a], k[b], width)
    capsule(k[NECK], k[NOSE], 0.6 * width)
    (cx, cy), r = head(figure)
    draw.ellipse([(cx - r) * scale, (cy - r) * scale, (cx + r) * scale, (cy + r) * scale], fill=fill)
    return image.resize((pixels, pixels), Image.LANCZOS)


def render_pose(figure: Figure, pixels: int = SIZE) -> np.ndarray:
    """The OpenPose skeleton map (uint8 RGB on black) at `pixels` square, as the openpose preprocessors draw it."""
    from controlnet_aux.open_pose.body import Keypoint
    from controlnet_aux.open_pose.util import draw_bodypose
    canvas = np.zeros((pixels, pixels, 3), np.uint8)
    return draw_bodypose(canvas, [Keypoint(x, y) for x, y in figure.keypoints])


def figure_caption(figure: Figure, rng: random.Random, colours_only: bool = False) -> str:
    """"a red figure on a blue background" and its variants; with `colours_only`, the figure is not named."""
    thing = f"something {figure.color}" if colours_only else _article(f"{figure.color} {rng.choice(FIGURE_WORDS)}")
    background = f"{figure.background} {rng.choice(BACKGROUND_WORDS)}"
    return rng.choice([f"{thing} on {_article(background)}", f"{thing}, {background}", f"{background}, {thing}"])
