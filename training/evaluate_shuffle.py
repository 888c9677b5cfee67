"""Does starter-shuffle carry a reference picture's colours over? Measured as users meet it.

    python -m training.evaluate_shuffle --scenes 40

A user brings a 512-px reference picture (a held-out scene) to the shuffle tab; its default preprocessor,
A1111's content shuffle, scrambles it at processor resolution 512 and the engine fits the map to 64 px (A1111's
control_v11e_sd15_shuffle pools its residuals over space; the starter-shuffle does not, see train_controlnet's
--pooled). The prompt is empty (guess mode) or names shapes without colours ("a circle and a star"); each
picture is made with the map and, at the same seed and prompt, without it:
- background colour right: most of the picture's border is nearest the reference's background colour;
- thing colour right: most of its foreground is nearest one of the reference's shape colours;
- colour-histogram similarity: the intersection of the two pictures' histograms over the scene colours (each
  pixel counted as its nearest colour), 1 when the picture has the reference's colours in the same shares.
Writes training/runs/eval-shuffle.md.
"""
import argparse
import random

import numpy as np
from PIL import Image

from training.common import EVAL_SEED_START, RUNS
from training.evaluate_adherence import colours_right, generate, nearest_colours, write_report
from training.scenes import SHAPE_WORDS, free_scene, render

PHOTO = 512
PROMPTS = ("empty", "shapes")


def held_out(count: int):
    """(seed, scene, {prompt kind: prompt}) of held-out free scenes."""
    cases = []
    for i in range(count):
        rng = random.Random(EVAL_SEED_START + 11_000_000 + i)
        scene = free_scene(rng)
        shapes = " and ".join(f"a {rng.choice(SHAPE_WORDS[s.kind])}" for s in scene.shapes)
        cases.append((EVAL_SEED_START + i, scene, {"empty": "", "shapes": shapes}))
    return cases


def shuffle_unit(annotators, controlnet, scene, seed: int, guess: bool):
    from engine.control import ControlUnit
    detected = annotators.run("shuffle", np.asarray(render(scene, PHOTO)), PHOTO)
    return ControlUnit(controlnet, Image.fromarray(detected), weight=1.0, guess_mode=guess)


def colour_histogram(image) -> dict[str, float]:
    names = nearest_colours(np.asarray(image.convert("RGB"), np.float32).reshape(-1, 3))
    return {name: names.count(name) / len(names) for name in set(names)}


def histogram_similarity(image, reference) -> float:
    ours, theirs = colour_histogram(image), colour_histogram(reference)
    return sum(min(share, theirs.get(name, 0.0)) for name, share in ours.items())


def judged(scene, image) -> tuple[float, float, float]:
    """(background colour right, thing colour right, colour-histogram similarity to the reference)."""
    thing, background = colours_right(image, {s.color for s in scene.shapes}, scene.background)
    return background, thing, histogram_similarity(image, render(scene))


def measure(pipe, controlnet, annotators, cases, steps: int = 20) -> dict:
    """{prompt kind: {"with": (background right, thing right, histogram similarity), "without": (...)}}."""
    table = {}
    for kind in PROMPTS:
        rows = {"with": [], "without": []}
        for seed, scene, prompts in cases:
            unit = shuffle_unit(annotators, controlnet, scene, seed, guess=kind == "empty")
            rows["with"].append(judged(scene, generate(pipe, prompts[kind], seed, [unit], steps)))
            rows["without"].append(judged(scene, generate(pipe, prompts[kind], seed, [], steps)))
        table[kind] = {k: tuple(np.mean(v, axis=0)) for k, v in rows.items()}
    return table


def report(table: dict, count: int, name: str) -> str:
    lines = [f"{name}: {count} held-out 512-px reference pictures through content shuffle, DPM++ 2M 20 steps, "
             "CFG 7", "", "| prompt | background colour right with / without | thing colour right with / without "
             "| colour-histogram similarity with / without |", "| --- | --- | --- | --- |"]
    label = {"empty": "empty, guess mode", "shapes": "names shapes, no colours"}
    for kind, row in table.items():
        (bw, tw, hw), (bo, to, ho) = row["with"], row["without"]
        lines.append(f"| {label[kind]} | {bw:.0%} / {bo:.0%} | {tw:.0%} / {to:.0%} | {hw:.3f} / {ho:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/Stable-diffusion/starter")
    parser.add_argument("--controlnet", default="models/ControlNet/starter-shuffle")
    parser.add_argument("--scenes", type=int, default=40)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", default=str(RUNS / "eval-shuffle.md"))
    args = parser.parse_args(argv)
    from pathlib import Path

    from engine import Device, load_pipeline
    from engine.loading.controlnet import load_controlnet
    from extensions import ExtensionAPI, load_extensions
    pipe = load_pipeline(args.model, Device.cpu_fp32())
    annotators = load_extensions(ExtensionAPI(Path("models/annotators")))
    table = measure(pipe, load_controlnet(Path(args.controlnet)), annotators, held_out(args.scenes), args.steps)
    text = report(table, args.scenes, Path(args.controlnet).name)
    write_report(text, args.out)


if __name__ == "__main__":
    main()
