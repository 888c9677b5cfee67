"""Does starter-pose make the figure take the skeleton's pose? Measured as users meet it.

    python -m training.evaluate_pose --figures 40

Held-out figures (seeds never used in training) are handed over as users hand over a pose: the 512-px
OpenPose skeleton picture uploaded with preprocessor "none", fitted to the 64-px picture by the engine as on
the openpose tab and in the API. Prompts are "a red figure on a blue background" (the figure named, not its
pose or place), colours only ("something red on a blue background") or empty with guess mode. Each picture
is made with the map and, at the same seed and prompt, without it:
- figure IoU: the output's foreground against the true figure's;
- limb hits: the share of points along the skeleton's limbs that land on the output's foreground (a caption
  cannot say where the arms are);
- colours right: the figure in the prompt's colour, the border in its background colour.
Writes training/runs/eval-pose.md.
"""
import argparse
import random

import numpy as np

from training.common import EVAL_SEED_START, RUNS
from training.evaluate_adherence import colours_right, foreground, generate, shape_iou, write_report
from training.figures import LIMBS, figure_caption, random_figure, render_figure, render_pose
from training.scenes import COLORS, SIZE

PHOTO = 512
PROMPTS = ("figure", "colours", "empty")


def true_figure(figure) -> np.ndarray:
    a = np.asarray(render_figure(figure), np.float32)
    return np.linalg.norm(a - np.asarray(COLORS[figure.background], np.float32), axis=2) > 50


def limb_points(figure, per_limb: int = 5) -> np.ndarray:
    """(N, 2) integer pixel positions along the figure's limbs, in the 64-px picture."""
    k = np.asarray(figure.keypoints)
    t = np.linspace(0, 1, per_limb)[:, None]
    points = np.concatenate([k[a] * (1 - t) + k[b] * t for a, b in LIMBS])
    return np.clip((points * SIZE).astype(int), 0, SIZE - 1)


def limb_hits(figure, found: np.ndarray) -> float:
    points = limb_points(figure)
    return float(found[points[:, 1], points[:, 0]].mean())


def scores(figure, image) -> tuple[float, float]:
    found = foreground(image)
    return shape_iou(true_figure(figure), found), limb_hits(figure, found)


def judged(figure, image) -> tuple:
    """(figure IoU, limb hits, figure colour right, background colour right)."""
    return (*scores(figure, image), *colours_right(image, {figure.color}, figure.background))


def held_out(count: int):
    """(seed, figure, {prompt kind: prompt}) of held-out figures."""
    cases = []
    for i in range(count):
        rng = random.Random(EVAL_SEED_START + 9_000_000 + i)
        figure = random_figure(rng)
        prompts = {"figure": figure_caption(figure, rng), "colours": figure_caption(figure, rng, colours_only=True),
                   "empty": ""}
        cases.append((EVAL_SEED_START + i, figure, prompts))
    return cases


def pose_unit(controlnet, figure, weight: float = 1.0, guess: bool = False):
    from PIL import Image

    from engine.control import ControlUnit
    return ControlUnit(controlnet, Image.fromarray(render_pose(figure, PHOTO)), weight=weight, guess_mode=guess)


def measure(pipe, controlnet, cases, steps: int = 20) -> dict:
    """{prompt kind: {"with": (iou, hits), "without": (iou, hits)}}."""
    table = {}
    for kind in PROMPTS:
        rows = {"with": [], "without": []}
        for seed, figure, prompts in cases:
            unit = pose_unit(controlnet, figure, guess=kind == "empty")
            rows["with"].append(judged(figure, generate(pipe, prompts[kind], seed, [unit], steps)))
            rows["without"].append(judged(figure, generate(pipe, prompts[kind], seed, [], steps)))
        table[kind] = {k: tuple(np.mean(v, axis=0)) for k, v in rows.items()}
    return table


def report(table: dict, count: int, name: str) -> str:
    lines = [f"{name}: {count} held-out figures, 512-px skeletons (preprocessor none) fitted to 64 px, "
             "DPM++ 2M 20 steps, CFG 7", "",
             "| prompt | figure IoU with / without | limb hits with / without | figure colour right with / without "
             "| background colour right with / without |", "| --- | --- | --- | --- | --- |"]
    label = {"figure": "names the figure", "colours": "colours only", "empty": "empty, guess mode"}
    for kind, row in table.items():
        (iw, hw, cw, bw), (io, ho, co, bo) = row["with"], row["without"]
        colours = f"| {cw:.0%} / {co:.0%} | {bw:.0%} / {bo:.0%} |" if kind != "empty" else "| - | - |"
        lines.append(f"| {label[kind]} | {iw:.3f} / {io:.3f} | {hw:.3f} / {ho:.3f} {colours}")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/Stable-diffusion/starter")
    parser.add_argument("--controlnet", default="models/ControlNet/starter-pose")
    parser.add_argument("--figures", type=int, default=40)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", default=str(RUNS / "eval-pose.md"))
    args = parser.parse_args(argv)
    from pathlib import Path

    from engine import Device, load_pipeline
    from engine.loading.controlnet import load_controlnet
    pipe = load_pipeline(args.model, Device.cpu_fp32())
    text = report(measure(pipe, load_controlnet(Path(args.controlnet)), held_out(args.figures), args.steps),
                  args.figures, Path(args.controlnet).name)
    write_report(text, args.out)


if __name__ == "__main__":
    main()
