"""Procedural scenes for the starter model: coloured shapes on a coloured background, with captions and the
exact control maps (edges, ADE20K-coloured segmentation, layer depth) rendered from the same description.

Everything is a pure function of a seed, so data sets, held-out splits and evaluations are reproducible.
"""
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SIZE = 64

COLORS = {   # name -> RGB, far apart so a colour is unambiguous at a glance
    "red": (220, 30, 30), "orange": (245, 140, 20), "yellow": (245, 220, 40), "green": (40, 170, 60),
    "blue": (40, 80, 220), "purple": (140, 50, 180), "pink": (245, 130, 190), "brown": (120, 70, 30),
    "black": (20, 20, 20), "white": (245, 245, 245), "gray": (128, 128, 128), "cyan": (40, 210, 220),
}
SHAPES = ["circle", "square", "triangle", "star", "ring", "diamond"]
SIZES = {"small": 0.10, "medium": 0.15, "large": 0.21}            # radius as a fraction of the image side
POSITIONS = {   # name -> centre as fractions of the image
    "top left": (0.25, 0.25), "top": (0.5, 0.25), "top right": (0.75, 0.25),
    "left": (0.25, 0.5), "center": (0.5, 0.5), "right": (0.75, 0.5),
    "bottom left": (0.25, 0.75), "bottom": (0.5, 0.75), "bottom right": (0.75, 0.75),
}
# ADE20K palette colours of a class per shape (seg maps in the colour scheme ControlNet seg models expect)
ADE20K = {"background": (120, 120, 120), "circle": (255, 6, 51), "square": (204, 70, 3), "triangle": (80, 50, 50),
          "star": (4, 200, 3), "ring": (120, 120, 80), "diamond": (140, 140, 140)}

SHAPE_WORDS = {"circle": ["circle", "disc", "round dot"], "square": ["square", "box"], "triangle": ["triangle"],
               "star": ["star"], "ring": ["ring", "donut"], "diamond": ["diamond", "rhombus"]}
SIZE_WORDS = {"small": ["small", "little", "tiny"], "medium": ["", "medium"], "large": ["large", "big"]}
POSITION_WORDS = {
    "top left": ["in the top left corner", "at the top left", "in the upper left"],
    "top": ["at the top", "near the top", "in the upper middle"],
    "top right": ["in the top right corner", "at the top right", "in the upper right"],
    "left": ["on the left", "at the left side", "to the left"],
    "center": ["in the center", "in the middle", "at the centre"],
    "right": ["on the right", "at the right side", "to the right"],
    "bottom left": ["in the bottom left corner", "at the bottom left", "in the lower left"],
    "bottom": ["at the bottom", "near the bottom", "in the lower middle"],
    "bottom right": ["in the bottom right corner", "at the bottom right", "in the lower right"],
}
BACKGROUND_WORDS = ["background", "backdrop"]


@dataclass(frozen=True)
class Shape:
    kind: str
    color: str
    size: str                    # the nearest size word (a free shape's radius may lie between them)
    position: str                # the nearest position name
    centre: tuple | None = None  # a free shape's own centre (fractions of the image) ...
    radius: float | None = None  # ... and radius (fraction of the side), instead of the named grid

    @property
    def xy(self) -> tuple:
        return self.centre or POSITIONS[self.position]

    @property
    def r(self) -> float:
        return self.radius or SIZES[self.size]


@dataclass(frozen=True)
class Scene:
    background: str
    shapes: tuple[Shape, ...]   # painted in order: later shapes lie on top (and nearer)


def random_scene(rng: random.Random, max_shapes: int = 3) -> Scene:
    background = rng.choice(list(COLORS))
    count = rng.choices(range(1, max_shapes + 1), weights=[6, 3, 1][:max_shapes])[0]
    positions = rng.sample(list(POSITIONS), count)
    shapes = []
    for position in positions:
        color = rng.choice([c for c in COLORS if c != background])
        size = rng.choice(list(SIZES)) if count == 1 else rng.choice(["small", "medium"])
        shapes.append(Shape(rng.choice(SHAPES), color, size, position))
    return Scene(background, tuple(shapes))


def nearest(table: dict, value):
    """The name in `table` whose value lies nearest `value` (a number or a point)."""
    return min(table, key=lambda name: float(np.sum((np.asarray(table[name]) - np.asarray(value)) ** 2)))


def free_scene(rng: random.Random, max_shapes: int = 3) -> Scene:
    """Shapes of any size at any place, which no caption names exactly: the map must say where and how big."""
    background = rng.choice(list(COLORS))
    count = rng.choices(range(1, max_shapes + 1), weights=[5, 3, 2][:max_shapes])[0]
    shapes = []
    for _ in range(count):
        radius = rng.uniform(0.07, 0.34 if count == 1 else 0.22)
        centre = (rng.uniform(radius * 0.8, 1 - radius * 0.8), rng.uniform(radius * 0.8, 1 - radius * 0.8))
        color = rng.choice([c for c in COLORS if c != background])
        shapes.append(Shape(rng.choice(SHAPES), color, nearest(SIZES, radius), nearest(POSITIONS, centre),
                            centre, radius))
    return Scene(background, tuple(shapes))


def _article(text: str) -> str:
    return ("an " if text[0] in "aeiou" else "a ") + text


def _phrase(rng: random.Random, shape: Shape) -> str:
    size = rng.choice(SIZE_WORDS[shape.size])
    words = _article(" ".join(w for w in (size, shape.color, rng.choice(SHAPE_WORDS[shape.kind])) if w))
    where = rng.choice(POSITION_WORDS[shape.position])
    return f"{words} {where}" if rng.random() < 0.7 else f"{where}, {words}"


def caption(scene: Scene, rng: random.Random) -> str:
    """Varied English for the same scene: synonyms, word order, article and background phrasing."""
    phrases = [_phrase(rng, s) for s in scene.shapes]
    rng.shuffle(phrases)
    things = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    background = f"{scene.background} {rng.choice(BACKGROUND_WORDS)}"
    templates = [
        lambda: f"{things} on {_article(background)}",
        lambda: f"{_article(background)} with {things}",
        lambda: f"{things}, {background}",
        lambda: f"{background}, {things}",
    ]
    return rng.choice(templates)()


COLOUR_ONLY_THINGS = ["something {c}", "a {c} thing", "a {c} shape", "{c}", "a {c} object", "{c} shapes"]


def colour_caption(scene: Scene, rng: random.Random, shapes_named: bool = False) -> str:
    """The colours only (or, with `shapes_named`, colours and shapes), never a place or a size: a caption
    the control map has to complete, as a user's prompt does when the sketch says where things are."""
    if shapes_named:
        things = [_article(f"{s.color} {rng.choice(SHAPE_WORDS[s.kind])}") for s in scene.shapes]
    else:
        colours = list(dict.fromkeys(s.color for s in scene.shapes))
        things = [rng.choice(COLOUR_ONLY_THINGS).format(c=" and ".join(colours))]
    rng.shuffle(things)
    listed = things[0] if len(things) == 1 else ", ".join(things[:-1]) + " and " + things[-1]
    background = f"{scene.background} {rng.choice(BACKGROUND_WORDS)}"
    return rng.choice([f"{listed} on {_article(background)}", f"{listed}, {background}",
                       f"{background}, {listed}", f"{listed} on {scene.background}"])


def _outline(shape: Shape, scale: int) -> tuple[str, list]:
    """('ellipse' | 'polygon' | 'ring', points) for drawing at `scale` x SIZE pixels."""
    cx, cy = (v * SIZE * scale for v in shape.xy)
    r = shape.r * SIZE * scale
    if shape.kind in ("circle", "ring"):
        return ("ring" if shape.kind == "ring" else "ellipse"), [cx - r, cy - r, cx + r, cy + r]
    if shape.kind == "square":
        s = r * 0.85
        return "polygon", [(cx - s, cy - s), (cx + s, cy - s), (cx + s, cy + s), (cx - s, cy + s)]
    if shape.kind == "diamond":
        return "polygon", [(cx, cy - r), (cx + r * 0.8, cy), (cx, cy + r), (cx - r * 0.8, cy)]
    if shape.kind == "triangle":
        return "polygon", [(cx, cy - r), (cx + r * 0.95, cy + r * 0.75), (cx - r * 0.95, cy + r * 0.75)]
    points = []
    for i in range(10):   # five-pointed star
        angle = np.pi / 2 + i * np.pi / 5
        radius = r if i % 2 == 0 else r * 0.45
        points.append((cx + radius * np.cos(angle), cy - radius * np.sin(angle)))
    return "polygon", points


def _draw(draw: ImageDraw.ImageDraw, shape: Shape, fill, scale: int):
    kind, points = _outline(shape, scale)
    if kind == "polygon":
        draw.polygon(points, fill=fill)
    elif kind == "ellipse":
        draw.ellipse(points, fill=fill)
    else:   # a thick outline: the hole shows whatever lies beneath
        draw.ellipse(points, outline=fill, width=max(1, round((points[2] - points[0]) * 0.2)))


def _paint(scene: Scene, colour_of, background, scale: int = 4) -> Image.Image:
    """Draw at `scale` x the resolution (downsampled by the caller for antialiased edges)."""
    image = Image.new("RGB", (SIZE * scale, SIZE * scale), background)
    draw = ImageDraw.Draw(image)
    for index, shape in enumerate(scene.shapes):
        _draw(draw, shape, colour_of(index, shape), scale)
    return image


def render(scene: Scene, pixels: int = SIZE) -> Image.Image:
    """The RGB picture, 64x64 (or `pixels` square: the same scene as a larger picture a user might upload)."""
    scale = max(4, 2 * pixels // SIZE)
    big = _paint(scene, lambda i, s: COLORS[s.color], COLORS[scene.background], scale)
    return big.resize((pixels, pixels), Image.LANCZOS)


def render_segmentation(scene: Scene) -> Image.Image:
    """Each pixel in the ADE20K colour of its class (nearest-neighbour: exact class colours)."""
    big = _paint(scene, lambda i, s: ADE20K[s.kind], ADE20K["background"], scale=1)
    return big


def render_depth(scene: Scene) -> Image.Image:
    """Layer order as brightness: background black, later (nearer) shapes brighter."""
    n = len(scene.shapes)
    big = _paint(scene, lambda i, s: (int(255 * (i + 1) / n),) * 3, (0, 0, 0), scale=1)
    return big.convert("L").convert("RGB")


def render_edges(scene: Scene) -> Image.Image:
    """White one-pixel boundaries between differently labelled regions, on black."""
    labels = np.asarray(_paint(scene, lambda i, s: (i + 1, 0, 0), (0, 0, 0), scale=1))[..., 0].astype(np.int16)
    edge = np.zeros_like(labels, dtype=bool)
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge[1:, :] |= labels[1:, :] != labels[:-1, :]
    return Image.fromarray((edge * 255).astype(np.uint8)).convert("RGB")


def scene_for(seed: int, max_shapes: int = 3) -> tuple[Scene, str]:
    """The scene and one caption of it, both determined by `seed`."""
    rng = random.Random(seed)
    scene = random_scene(rng, max_shapes)
    return scene, caption(scene, rng)
