"""A1111's X/Y/Z plot: up to three axes of settings, a request for every combination, and a labelled grid.

Axis values are written as A1111 writes them: comma-separated (CSV quoting for values with commas), and for
numbers ranges: `1-5` (every step of 1), `1-10 (+2)` (a step), `10-20 [5]` (that many values, evenly spread).
Each cell is the base request with one value per axis applied; axes that need another model (checkpoint,
VAE, refiner) set the cell's model choice, which the caller switches to. Cells are made in an order that
switches models least, and placed in the grid by their position.
"""
import csv
import dataclasses
import io
import itertools
import random
import re
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .errors import EngineError

_INT_RANGE = re.compile(r"\s*([+-]?\s*\d+)\s*-\s*([+-]?\s*\d+)(?:\s*\(([+-]\d+)\s*\))?\s*")
_FLOAT_RANGE = re.compile(r"\s*([+-]?\s*\d+(?:.\d*)?)\s*-\s*([+-]?\s*\d+(?:.\d*)?)(?:\s*\(([+-]\d+(?:.\d*)?)\s*\))?\s*")
_INT_COUNT = re.compile(r"\s*([+-]?\s*\d+)\s*-\s*([+-]?\s*\d+)(?:\s*\[(\d+)\s*])?\s*")
_FLOAT_COUNT = re.compile(r"\s*([+-]?\s*\d+(?:.\d*)?)\s*-\s*([+-]?\s*\d+(?:.\d*)?)(?:\s*\[(\d+(?:.\d*)?)\s*])?\s*")
MAX_CELLS = 400


class XYZError(EngineError, ValueError):
    """An axis or value the plot cannot use; the message says which."""


@dataclass
class Cell:
    request: object                     # engine.GenerationRequest
    checkpoint: str | None = None       # None: the loaded model
    vae: str | None = None              # None: as it is
    refiner: str | None = None
    styles: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class AxisKind:
    label: str
    kind: type | str                    # int, float, str or "permutations"
    apply: Callable[[Cell, object, list], None]
    label_value: bool = True            # the legend says "label: value" (else the value alone)


def _field(name: str):
    def apply(cell: Cell, value, _):
        cell.request = dataclasses.replace(cell.request, **{name: value})
    return apply


def _hires(name: str):
    def apply(cell: Cell, value, _):
        if cell.request.hires is None:
            raise XYZError("the hires axes need Hires. fix ticked")
        cell.request = dataclasses.replace(cell.request, hires=dataclasses.replace(cell.request.hires, **{name: value}))
    return apply


def _prompt_sr(cell: Cell, value: str, values: list) -> None:
    """Prompt S/R: the first value is searched for, and each value replaces it (prompt and negative)."""
    r = cell.request
    if values[0] not in r.prompt and values[0] not in r.negative_prompt:
        raise XYZError(f"Prompt S/R did not find {values[0]!r} in the prompt or negative prompt")
    cell.request = dataclasses.replace(r, prompt=r.prompt.replace(values[0], value),
                                       negative_prompt=r.negative_prompt.replace(values[0], value))


def _prompt_order(cell: Cell, value: tuple, _) -> None:
    """Prompt order: the listed words put into the prompt in this order, where they stood."""
    prompt = cell.request.prompt
    found = sorted((prompt.find(token), token) for token in value)
    parts = []
    for _, token in found:
        at = prompt.find(token)
        parts.append(prompt[:at])
        prompt = prompt[at + len(token):]
    cell.request = dataclasses.replace(cell.request, prompt="".join(p + v for p, v in zip(parts, value)) + prompt)


def _size(cell: Cell, value: str, _) -> None:
    width, _, height = value.lower().partition("x")
    try:
        cell.request = dataclasses.replace(cell.request, width=int(width), height=int(height))
    except ValueError:
        raise XYZError(f"Size: {value!r} is not WIDTHxHEIGHT") from None


def _control_weight(cell: Cell, value: float, _) -> None:
    if not cell.request.control_units:
        raise XYZError("the ControlNet weight axis needs a ControlNet unit")
    cell.request = dataclasses.replace(cell.request, control_units=[
        dataclasses.replace(u, weight=value) for u in cell.request.control_units])


def _set(name: str):
    def apply(cell: Cell, value, _):
        setattr(cell, name, None if str(value).lower() in ("none", "") and name == "refiner" else value)
    return apply


def _styles(cell: Cell, value: str, _) -> None:
    cell.styles += [s.strip() for s in value.split(",") if s.strip()]


AXES = {kind.label: kind for kind in [
    AxisKind("Nothing", str, lambda cell, value, values: None),
    AxisKind("Seed", int, _field("seed")),
    AxisKind("Var. seed", int, _field("subseed")),
    AxisKind("Var. strength", float, _field("subseed_strength")),
    AxisKind("Steps", int, _field("steps")),
    AxisKind("Hires steps", int, _hires("steps")),
    AxisKind("CFG Scale", float, _field("cfg_scale")),
    AxisKind("Prompt S/R", str, _prompt_sr, label_value=False),
    AxisKind("Prompt order", "permutations", _prompt_order, label_value=False),
    AxisKind("Sampler", str, _field("sampler"), label_value=False),
    AxisKind("Hires sampler", str, _hires("sampler")),
    AxisKind("Checkpoint name", str, _set("checkpoint"), label_value=False),
    AxisKind("Sigma noise", float, _field("s_noise")),
    AxisKind("Schedule type", str, _field("schedule")),
    AxisKind("Eta", float, _field("eta")),
    AxisKind("Clip skip", int, _field("clip_skip")),
    AxisKind("Denoising", float, _field("denoising_strength")),
    AxisKind("Hires upscaler", str, _hires("upscaler")),
    AxisKind("VAE", str, _set("vae")),
    AxisKind("Styles", str, _styles),
    AxisKind("Refiner checkpoint", str, _set("refiner")),
    AxisKind("Refiner switch at", float, _field("refiner_switch_at")),
    AxisKind("Size", str, _size),
    AxisKind("[ControlNet] Weight", float, _control_weight),
]}
AXES["Hires upscale"] = AxisKind("Hires upscale", float, _hires("scale"))

# A1111 1.10's axis lists, in its order: API clients name an axis by its index in the tab's list
A1111_AXES = ["Nothing", "Seed", "Var. seed", "Var. strength", "Steps", "Hires steps", "CFG Scale", "Image CFG Scale",
              "Prompt S/R", "Prompt order", "Sampler", "Hires sampler", "Sampler (img2img)", "Checkpoint name",
              "Negative Guidance minimum sigma", "Sigma Churn", "Sigma min", "Sigma max", "Sigma noise",
              "Schedule type", "Schedule min sigma", "Schedule max sigma", "Schedule rho", "Beta schedule alpha",
              "Beta schedule beta", "Eta", "Clip skip", "Denoising", "Initial noise multiplier", "Extra noise",
              "Hires upscaler", "Cond. Image Mask Weight", "VAE", "Styles", "UniPC Order", "Face restore",
              "Token merging ratio", "Token merging ratio high-res", "Always discard next-to-last sigma",
              "SGM noise multiplier", "Refiner checkpoint", "Refiner switch at", "RNG source", "FP8 mode", "Size"]
TXT2IMG_ONLY = {"Hires steps", "Hires sampler", "Sampler", "Hires upscaler"}
IMG2IMG_ONLY = {"Image CFG Scale", "Sampler (img2img)", "Cond. Image Mask Weight"}


def a1111_axis_list(img2img: bool) -> list[str]:
    """A1111's axis labels of the txt2img or img2img tab, in its order (the API's axis indices)."""
    skip = TXT2IMG_ONLY if img2img else IMG2IMG_ONLY
    names = [name for name in A1111_AXES if name not in skip]
    return [("Sampler" if name == "Sampler (img2img)" else name) for name in names] + ["[ControlNet] Weight"]


def axis_kind(axis, img2img: bool = False) -> AxisKind:
    """The axis named by A1111 label or by its index in A1111's list for the tab."""
    label = axis
    if isinstance(axis, int) and not isinstance(axis, bool):
        names = a1111_axis_list(img2img)
        if not 0 <= axis < len(names):
            raise XYZError(f"axis index {axis} is not in A1111's list (0 to {len(names) - 1})")
        label = names[axis]
    if label not in AXES:
        raise XYZError(f"the axis {label!r} is not available here; axes: {', '.join(AXES)}")
    return AXES[label]


def csv_values(text: str) -> list[str]:
    return [v.strip() for v in itertools.chain.from_iterable(csv.reader(io.StringIO(text)))]


def parse_values(kind: AxisKind, text: str | list) -> list:
    """The axis's values from A1111's notation (or a list, as the dropdowns give them)."""
    if kind.label == "Nothing":
        return [None]
    values = list(text) if isinstance(text, (list, tuple)) else csv_values(text or "")
    values = [v for v in values if str(v) != ""]
    if not values:
        raise XYZError(f"{kind.label}: no values given")
    if kind.kind in (int, float):
        spread = []
        for value in values:
            value = str(value)
            step_range = (_INT_RANGE if kind.kind is int else _FLOAT_RANGE).fullmatch(value)
            count_range = (_INT_COUNT if kind.kind is int else _FLOAT_COUNT).fullmatch(value)
            if step_range:
                start, end = kind.kind(step_range.group(1).replace(" ", "")), kind.kind(step_range.group(2).replace(" ", ""))
                step = kind.kind(step_range.group(3)) if step_range.group(3) else 1
                spread += (list(range(start, end + 1, step)) if kind.kind is int
                           else np.arange(start, end + step, step).tolist())
            elif count_range:
                start, end = float(count_range.group(1).replace(" ", "")), float(count_range.group(2).replace(" ", ""))
                count = int(float(count_range.group(3))) if count_range.group(3) else 1
                spread += [kind.kind(v) for v in np.linspace(start, end, count).tolist()]
            else:
                try:
                    spread.append(kind.kind(value))
                except ValueError:
                    raise XYZError(f"{kind.label}: {value!r} is not a number") from None
        return spread
    if kind.kind == "permutations":
        return list(itertools.permutations(values))
    return [str(v) for v in values]


@dataclass
class Axis:
    kind: AxisKind
    values: list

    def labels(self) -> list[str]:
        def text(v):
            v = round(v, 8) if isinstance(v, float) else v
            v = ", ".join(v) if isinstance(v, tuple) else v
            return f"{self.kind.label}: {v}" if self.kind.label_value else str(v)
        return ["" if self.kind.label == "Nothing" else text(v) for v in self.values]


def plan_cells(base, axes: list[Axis], keep_random_seeds: bool = False, vary_seeds=(False, False, False)
               ) -> list[tuple[tuple[int, int, int], Cell]]:
    """Every combination (x fastest), as ((ix, iy, iz), cell). A seed of -1 on a seed axis (or in the base
    request) is fixed once, so every cell shares it, unless `keep_random_seeds`; `vary_seeds` (x, y, z) adds
    the cell's index along those axes to its seed (A1111 1.10's "Vary seeds")."""
    if not keep_random_seeds:
        if base.seed == -1:
            base = dataclasses.replace(base, seed=random.randrange(4294967294))
        for axis in axes:
            if axis.kind.label in ("Seed", "Var. seed"):
                axis.values = [random.randrange(4294967294) if v in (-1, None) else v for v in axis.values]
    x, y, z = (axes + [Axis(AXES["Nothing"], [None])] * 3)[:3]
    if len(x.values) * len(y.values) * len(z.values) > MAX_CELLS:
        raise XYZError(f"the plot would have {len(x.values) * len(y.values) * len(z.values)} cells; "
                       f"at most {MAX_CELLS} are made")
    cells = []
    for iz, zv in enumerate(z.values):
        for iy, yv in enumerate(y.values):
            for ix, xv in enumerate(x.values):
                cell = Cell(dataclasses.replace(base, hires=dataclasses.replace(base.hires) if base.hires else None))
                for axis, value in ((x, xv), (y, yv), (z, zv)):
                    axis.kind.apply(cell, value, axis.values)
                shift = sum(i for i, vary in zip((ix, iy, iz), vary_seeds) if vary)
                if shift and cell.request.seed >= 0:
                    cell.request = dataclasses.replace(cell.request, seed=cell.request.seed + shift)
                cells.append(((ix, iy, iz), cell))
    return cells


def model_order(cells: list) -> list:
    """The cells in the order that switches checkpoint, VAE and refiner least (grid positions kept)."""
    return sorted(cells, key=lambda item: (item[1].checkpoint or "", item[1].vae or "", item[1].refiner or ""))


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:           # Pillow without FreeType
        return ImageFont.load_default()


def _wrapped(text: str, width: float, font, draw) -> list[str]:
    """The label in lines no wider than `width` (words kept whole), as A1111's grid legend wraps them."""
    lines = []
    for word in text.split(" "):
        if lines and draw.textlength(f"{lines[-1]} {word}", font=font) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines or [""]


def grid_image(pictures: list[Image.Image], columns: int, rows: int, x_labels: list[str], y_labels: list[str],
               margin: int = 0) -> Image.Image:
    """The pictures (row by row) in a grid, column labels above (wrapped to the column's width) and row
    labels on the left, as A1111 draws them."""
    w, h = max(p.width for p in pictures), max(p.height for p in pictures)
    size = max(10, min(48, w // 8))
    font = _font(size)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    x_lines = [_wrapped(t, w - 4, font, probe) for t in x_labels[:columns]]
    label_h = (size + 4) * max(len(lines) for lines in x_lines) + 8 if any(x_labels) else 0
    label_w = max([int(probe.textlength(t, font=font)) + 16 for t in y_labels if t] or [0])
    out = Image.new("RGB", (label_w + columns * w + (columns - 1) * margin, label_h + rows * h + (rows - 1) * margin),
                    "white")
    draw = ImageDraw.Draw(out)
    for i, picture in enumerate(pictures):
        row, column = divmod(i, columns)
        out.paste(picture.convert("RGB"), (label_w + column * (w + margin), label_h + row * (h + margin)))
    for column, lines in enumerate(x_lines):
        for k, line in enumerate(lines):
            left = label_w + column * (w + margin) + (w - probe.textlength(line, font=font)) / 2
            draw.text((left, 4 + k * (size + 4)), line, fill="black", font=font)
    for row, text in enumerate(y_labels[:rows]):
        draw.text((8, label_h + row * (h + margin) + (h - size) / 2), text, fill="black", font=font)
    return out


def run_cells(cells: list, generate: Callable[[Cell], object], should_stop: Callable[[], bool] = lambda: False
              ) -> tuple[dict, bool]:
    """Each cell's result by grid position, made in model_order; stops (keeping what was made) when
    `should_stop` says so or a cell comes back interrupted."""
    results = {}
    for position, cell in model_order(cells):
        if should_stop():
            return results, True
        result = generate(cell)
        results[position] = result
        if result.interrupted:
            return results, True
    return results, False


def plot_result(axes: list[Axis], cells: list, results: dict, interrupted: bool, legend: bool = True,
                margin: int = 0, include_lone: bool = False, include_sub_grids: bool = False):
    """A1111's answer: the grid (x across, y down; several z side by side under their labels), then the
    sub-grids of each z (`include_sub_grids`) and the single pictures (`include_lone`). Cells not made
    (an Interrupt) are blank."""
    from .request import GenerationResult
    x, y, z = (axes + [Axis(AXES["Nothing"], [None])] * 3)[:3]
    made = [r.images[0] for r in results.values() if r.images]
    if not made:
        return GenerationResult([], [], [], [], interrupted=interrupted)
    blank = Image.new("RGB", made[0].size)
    pictures = {p: (results[p].images[0] if p in results and results[p].images else blank) for p, _ in cells}
    infotexts = {p: results[p].infotexts[0] for p in results if results[p].images}
    plain = lambda labels: labels if legend else [""] * len(labels)  # noqa: E731
    subs = []
    for iz in range(len(z.values)):
        tiles = [pictures[(ix, iy, iz)] for iy in range(len(y.values)) for ix in range(len(x.values))]
        subs.append(grid_image(tiles, len(x.values), len(y.values), plain(x.labels()), plain(y.labels()), margin))
    grid = subs[0] if len(subs) == 1 else grid_image(subs, len(subs), 1, plain(z.labels()), [""], margin)
    first_text = next(iter(infotexts.values()), "")
    images = [grid] + (subs if include_sub_grids and len(subs) > 1 else [])
    texts = [first_text] * len(images)
    lone = [p for p, _ in cells if p in infotexts] if include_lone else []
    result = GenerationResult(images + [pictures[p] for p in lone], [results[p].seeds[0] for p in lone],
                              [results[p].subseeds[0] for p in lone], texts + [infotexts[p] for p in lone],
                              interrupted=interrupted)
    result.grids = len(images)
    grid.info["parameters"] = first_text
    return result
