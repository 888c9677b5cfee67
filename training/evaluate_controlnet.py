"""Measure how closely pictures follow a starter ControlNet's map, on held-out scenes with fixed seeds.

    python -m training.evaluate_controlnet --scenes 100

Each held-out scene (one to three shapes, seeds never used in training) is generated from its caption twice,
with the control map and without it, at the same seed:
- edges: F1 between the scene's exact edge map and OpenCV's canny edges of the output (thresholds 100/200
  as A1111's canny), where a pixel counts as matched within `--tolerance` pixels (1 by default);
- seg: pixel accuracy of the output against the scene (each pixel labelled with the nearest of the scene's
  colours: the background or a shape), and the intersection-over-union of the shapes' area.
The scene's own ground-truth picture is scored the same way, as the ceiling of each measure.
Writes a markdown table to training/runs/eval-controlnet.md.
"""
import argparse
import time

import cv2
import numpy as np

from training.common import EVAL_SEED_START, RUNS
from training.scenes import COLORS, render, render_edges, render_segmentation, scene_for

CANNY_LOW, CANNY_HIGH = 100, 200


def canny_edges(image) -> np.ndarray:
    return cv2.Canny(np.asarray(image.convert("RGB")), CANNY_LOW, CANNY_HIGH) > 0


def edge_f1(truth: np.ndarray, found: np.ndarray, tolerance: int = 1) -> float:
    """F1 of two boolean edge maps; an edge pixel within `tolerance` pixels of the other map counts as matched."""
    if not truth.any() and not found.any():
        return 1.0
    kernel = np.ones((2 * tolerance + 1,) * 2, np.uint8)
    near_truth = cv2.dilate(truth.astype(np.uint8), kernel) > 0
    near_found = cv2.dilate(found.astype(np.uint8), kernel) > 0
    precision = (found & near_truth).sum() / max(found.sum(), 1)
    recall = (truth & near_found).sum() / max(truth.sum(), 1)
    return 0.0 if precision + recall == 0 else float(2 * precision * recall / (precision + recall))


def palette_labels(scene, image) -> np.ndarray:
    """Each pixel's index in [background, shape colours...]: the nearest of the scene's own colours."""
    palette = np.array([COLORS[scene.background]] + [COLORS[s.color] for s in scene.shapes], np.float32)
    pixels = np.asarray(image.convert("RGB"), np.float32)
    labels = np.argmin(np.linalg.norm(pixels[:, :, None, :] - palette[None, None], axis=-1), axis=-1)
    # shapes that share a colour share a label
    for i, shape in enumerate(scene.shapes, start=1):
        first = 1 + [s.color for s in scene.shapes].index(shape.color)
        labels[labels == i] = first
    return labels


def seg_scores(scene, image) -> tuple[float, float]:
    """(pixel accuracy, shape IoU) of a picture against the scene's segmentation."""
    truth = palette_labels(scene, render(scene))
    found = palette_labels(scene, image)
    accuracy = float((truth == found).mean())
    shapes_true, shapes_found = truth > 0, found > 0
    union = (shapes_true | shapes_found).sum()
    return accuracy, float((shapes_true & shapes_found).sum() / union) if union else 1.0


def held_out_scenes(count: int):
    return [(seed, *scene_for(seed)) for seed in range(EVAL_SEED_START, EVAL_SEED_START + count)]


def measure(pipe, controlnet, kind: str, scenes, tolerance: int, steps: int = 20) -> dict:
    """Mean scores with and without the control map, and for the ground-truth pictures."""
    from engine import GenerationRequest
    from engine.control import ControlUnit
    size = pipe.native_size
    rows = {"with control": [], "without control": [], "ground-truth picture": []}
    seconds = 0.0
    for seed, scene, text in scenes:
        control_map = (render_edges if kind == "edges" else render_segmentation)(scene)
        for label, units in (("with control", [ControlUnit(controlnet, control_map)]), ("without control", [])):
            start = time.perf_counter()
            image = pipe.generate(GenerationRequest(prompt=text, steps=steps, cfg_scale=7.0, width=size,
                                                    height=size, seed=seed, control_units=units)).images[0]
            seconds += (time.perf_counter() - start) if units else 0.0
            rows[label].append(score(kind, scene, image, tolerance))
        rows["ground-truth picture"].append(score(kind, scene, render(scene), tolerance))
    means = {label: np.mean(values, axis=0) for label, values in rows.items()}
    return {"means": means, "seconds": seconds / len(scenes)}


def score(kind: str, scene, image, tolerance: int):
    if kind == "edges":
        return [edge_f1(np.asarray(render_edges(scene))[..., 0] > 0, canny_edges(image), tolerance)]
    return list(seg_scores(scene, image))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/Stable-diffusion/starter")
    parser.add_argument("--controlnets", default="models/ControlNet", help="folder holding starter-edges, starter-seg")
    parser.add_argument("--kinds", nargs="+", default=["edges", "seg"], choices=["edges", "seg"])
    parser.add_argument("--scenes", type=int, default=100)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--tolerance", type=int, default=1, help="pixels an edge may be off and still match")
    args = parser.parse_args(argv)
    import torch
    from pathlib import Path
    from engine import Device, load_pipeline
    from engine.loading.controlnet import load_controlnet
    pipe = load_pipeline(args.model, Device.cpu_fp32())
    scenes = held_out_scenes(args.scenes)
    lines = [f"{args.scenes} held-out scenes (1-3 shapes), their captions, DPM++ 2M, {args.steps} steps, CFG 7, "
             f"{pipe.native_size}x{pipe.native_size}, ControlNet weight 1", "",
             "| ControlNet | measure | with control | without control | ground-truth picture | target |",
             "| --- | --- | --- | --- | --- | --- |"]
    for kind in args.kinds:
        controlnet = load_controlnet(Path(args.controlnets) / f"starter-{kind}")
        result = measure(pipe, controlnet, kind, scenes, args.tolerance, args.steps)
        names = ([f"edge F1 (canny of output, {args.tolerance} px tolerance)"] if kind == "edges"
                 else ["pixel accuracy", "shape IoU"])
        targets = [">= 0.6"] if kind == "edges" else ["-", "-"]
        m = result["means"]
        for i, name in enumerate(names):
            lines.append(f"| starter-{kind} | {name} | {m['with control'][i]:.3f} | {m['without control'][i]:.3f} "
                         f"| {m['ground-truth picture'][i]:.3f} | {targets[i]} |")
        lines.append(f"| starter-{kind} | time per image with control ({torch.get_num_threads()} threads) "
                     f"| {result['seconds']:.3f} s | | | |")
    text = "\n".join(lines) + "\n"
    RUNS.mkdir(parents=True, exist_ok=True)
    (RUNS / "eval-controlnet.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
