"""Measure how well a starter model follows its prompts, on held-out captions with fixed seeds.

    python -m training.evaluate --images 240

For each image: background colour (median of the border), the largest foreground object's colour,
position (its centroid's nearest grid point) and shape (a k-nearest-neighbour classifier on mask features,
fitted on the generator's own ground-truth renders). Writes a markdown table to training/runs/eval.md.
"""
import argparse
import random
import time
from functools import lru_cache

import cv2
import numpy as np
from scipy import ndimage

from training.common import EVAL_SEED_START, RUNS
from training.natural_captions import natural_caption
from training.scenes import COLORS, POSITIONS, caption, random_scene, render, scene_for

COLOR_NAMES = list(COLORS)
COLOR_TABLE = np.array([COLORS[c] for c in COLOR_NAMES], dtype=np.float32)
GRID = (0.25, 0.5, 0.75)


def nearest_color(rgb) -> str:
    return COLOR_NAMES[int(np.argmin(np.linalg.norm(COLOR_TABLE - np.asarray(rgb, np.float32), axis=1)))]


def _mask_features(filled: np.ndarray, obj: np.ndarray) -> np.ndarray:
    """Extent (area / bounding box), hole share, aspect, solidity (area / convex hull), the centroid's height in the
    box and the log of the first Hu moment: all well defined on symmetric shapes. (Hu moments 2-4 are not: they
    measure asymmetry, so on a circle or a diamond they are rounding noise, and on a log scale that noise
    outweighed everything else.)"""
    ys, xs = np.nonzero(filled)
    h, w = np.ptp(ys) + 1, np.ptp(xs) + 1
    area = filled.sum()
    mask = filled.astype(np.uint8)
    hull = cv2.convexHull(np.stack([xs, ys], axis=1).astype(np.int32))
    hull_mask = np.zeros_like(mask)
    cv2.fillConvexPoly(hull_mask, hull, 1)
    hu0 = cv2.HuMoments(cv2.moments(mask)).ravel()[0]
    return np.array([area / (h * w), (area - obj.sum()) / area, w / h, area / max(hull_mask.sum(), 1),
                     (ys.mean() - ys.min() + 0.5) / h, np.log10(hu0)], dtype=np.float32)


def analyse(image) -> dict | None:
    """{"background", "color", "position", "features"} of a picture, or None if no object stands out."""
    a = np.asarray(image.convert("RGB"), dtype=np.float32)
    border = np.concatenate([a[:2].reshape(-1, 3), a[-2:].reshape(-1, 3), a[:, :2].reshape(-1, 3),
                             a[:, -2:].reshape(-1, 3)])
    background_rgb = np.median(border, axis=0)
    foreground = np.linalg.norm(a - background_rgb, axis=2) > 60
    labels, count = ndimage.label(foreground)
    result = {"background": nearest_color(background_rgb)}
    if count == 0:
        return result
    sizes = ndimage.sum(foreground, labels, range(1, count + 1))
    obj = labels == (int(np.argmax(sizes)) + 1)
    if obj.sum() < 12:
        return result
    filled = ndimage.binary_fill_holes(obj)
    core = ndimage.binary_erosion(obj)
    pixels = a[core] if core.sum() >= 4 else a[obj]
    cy, cx = ndimage.center_of_mass(filled)
    size = a.shape[0]
    nearest = lambda v: min(GRID, key=lambda g: abs(g - v / size))  # noqa: E731
    result["color"] = nearest_color(np.median(pixels, axis=0))
    result["position"] = next(name for name, (x, y) in POSITIONS.items() if (x, y) == (nearest(cx), nearest(cy)))
    result["features"] = _mask_features(filled, obj)
    return result


@lru_cache(maxsize=1)
def shape_classifier(samples: int = 1800):
    """Standardised features of ground-truth single-shape renders, and their labels."""
    rng = random.Random(12345)
    features, labels = [], []
    while len(labels) < samples:
        scene = random_scene(rng, max_shapes=1)
        found = analyse(render(scene))
        if found and "features" in found:
            features.append(found["features"])
            labels.append(scene.shapes[0].kind)
    features = np.stack(features)
    mean, std = features.mean(0), features.std(0) + 1e-6
    return (features - mean) / std, np.array(labels), mean, std


def classify_shape(features: np.ndarray, k: int = 5) -> str:
    table, labels, mean, std = shape_classifier()
    distances = np.linalg.norm(table - (features - mean) / std, axis=1)
    votes = labels[np.argsort(distances)[:k]]
    names, counts = np.unique(votes, return_counts=True)
    return str(names[np.argmax(counts)])


def score(scene, image) -> dict:
    """1/0 per criterion for a single-shape scene and the picture made from its caption."""
    target, found = scene.shapes[0], analyse(image) or {}
    shape = classify_shape(found["features"]) if "features" in found else None
    return {"color": found.get("color") == target.color, "shape": shape == target.kind,
            "position": found.get("position") == target.position, "background": found.get("background") == scene.background}


def held_out_cases(count: int, exclude: set[str] | None = None):
    """Single-shape scenes with seeds never used in training, and one caption each."""
    cases, seed = [], EVAL_SEED_START
    while len(cases) < count:
        scene, text = scene_for(seed, max_shapes=1)
        if exclude is None or text not in exclude:
            cases.append((seed, scene, text))
        seed += 1
    return cases


def evaluate(pipe, count: int, sampler: str = "DPM++ 2M", steps: int = 20, cfg: float = 7.0, batch: int = 16,
             exclude: set[str] | None = None) -> dict:
    from engine import GenerationRequest
    size = pipe.native_size
    totals = {"color": 0, "shape": 0, "position": 0, "background": 0}
    cases = held_out_cases(count, exclude)
    seconds = 0.0
    for i in range(0, len(cases), batch):
        for seed, scene, text in cases[i:i + batch]:
            start = time.perf_counter()
            image = pipe.generate(GenerationRequest(prompt=text, sampler=sampler, steps=steps, cfg_scale=cfg,
                                                    width=size, height=size, seed=seed)).images[0]
            seconds += time.perf_counter() - start
            for key, ok in score(scene, image).items():
                totals[key] += ok
    results = {key: value / len(cases) for key, value in totals.items()}
    return results | {"seconds per image": seconds / len(cases)}


def quick_evaluation(unet, text_encoder, scaling_factor: float, runs, prediction_type: str = "epsilon",
                     zero_terminal_snr: bool = False, count: int = 48) -> dict:
    """During training: the EMA weights on a few held-out captions (10 steps, to stay cheap)."""
    pipe = training_pipeline(unet, text_encoder, scaling_factor, runs, prediction_type, zero_terminal_snr)
    results = evaluate(pipe, count, steps=10)
    results.pop("seconds per image")
    return {k: round(v, 3) for k, v in results.items()}


def training_pipeline(unet, text_encoder, scaling_factor: float, runs, prediction_type: str = "epsilon",
                      zero_terminal_snr: bool = False):
    from engine import Device
    from engine.models import AutoencoderKL, VAEConfig
    from engine.pipeline import Pipeline
    from engine.tokenizer import CLIPTokenizer
    from training.common import VAE_CONFIG, load_checkpoint
    vae = AutoencoderKL(VAEConfig.from_dict({**VAE_CONFIG, "scaling_factor": scaling_factor}))
    vae.load_state_dict(load_checkpoint(runs / "vae.pt")["model"])
    pipe = Pipeline(unet.eval(), vae.eval(), text_encoder.eval(), CLIPTokenizer(), prediction_type, Device.cpu_fp32(),
                    runs / "starter-in-training", zero_terminal_snr)
    pipe.model_hash = ""
    return pipe


def training_captions(scenes: int, per_scene: int = 3, natural: int = 0) -> set[str]:
    """Every caption the UNet stage's latent cache holds (as train_unet.build_latent_cache writes them)."""
    texts = set()
    for s in range(scenes):
        scene, first = scene_for(s)
        rng = random.Random(s * 7919 + 1)
        texts.add(first)
        texts.update(caption(scene, rng) for _ in range(per_scene - 1))
        texts.update(natural_caption(scene, rng) for _ in range(natural))
    return texts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/Stable-diffusion/starter")
    parser.add_argument("--images", type=int, default=240)
    parser.add_argument("--sampler", default="DPM++ 2M")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--cfg", type=float, default=7.0)
    parser.add_argument("--training-scenes", type=int, default=60000)
    parser.add_argument("--natural-captions", type=int, default=0, help="as the training run had it")
    args = parser.parse_args(argv)
    import torch
    from engine import Device, load_pipeline
    pipe = load_pipeline(args.model, Device.cpu_fp32())
    table, labels, _, _ = shape_classifier()
    checks = held_out_cases(200)
    classifier_accuracy = np.mean([classify_shape(analyse(render(sc))["features"]) == sc.shapes[0].kind
                                   for _, sc, _ in checks])
    results = evaluate(pipe, args.images, args.sampler, args.steps, args.cfg,
                       exclude=training_captions(args.training_scenes, natural=args.natural_captions))
    seconds = results.pop("seconds per image")
    lines = ["| measure | result | target |", "| --- | --- | --- |"]
    targets = {"color": 0.9, "shape": 0.8, "position": 0.8, "background": 0.9}
    for key, value in results.items():
        lines.append(f"| {key} accuracy | {value:.1%} | >= {targets[key]:.0%} |")
    lines.append(f"| shape classifier on ground-truth renders | {classifier_accuracy:.1%} | - |")
    lines.append(f"| time per image ({torch.get_num_threads()} threads) | {seconds:.3f} s | - |")
    text = (f"{args.model}: {args.images} held-out captions (none seen in training), {args.sampler}, "
            f"{args.steps} steps, CFG {args.cfg:g}, {pipe.native_size}x{pipe.native_size}\n\n"
            + "\n".join(lines) + "\n")
    (RUNS / "eval.md").parent.mkdir(parents=True, exist_ok=True)
    (RUNS / "eval.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
