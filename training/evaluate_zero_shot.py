"""Zero-shot colorization and super-resolution with the starter LCM (Song et al. 2023, Algorithm 4), measured.

    python -m training.evaluate_zero_shot --scenes 60

On held-out single-shape scenes (seeds no training run used), each prompted with its caption (which names the
colours), at 1, 2 and 4 LCM steps, CFG 7 as the starter evaluation runs the LCM:
- colorization: the greyscale picture in, colour accuracy of the named shape and of the background (as
  `training.evaluate` scores them), beside the same prompt and seed in txt2img and beside the greyscale input
  itself;
- super-resolution 16x16 -> 64x64: PSNR against the true 64-px picture and shape accuracy, beside bicubic
  upsampling of the same 16-px picture;
- the time per picture (2 threads).
Writes training/runs/eval-zero-shot.md.
"""
import argparse
import time

import numpy as np
from PIL import Image

from training.common import RUNS
from training.evaluate import analyse, classify_shape, held_out_cases
from training.evaluate_adherence import write_report
from training.scenes import render

STEPS = (1, 2, 4)


def psnr(image, truth) -> float:
    error = np.mean((np.asarray(image, np.float32) - np.asarray(truth, np.float32)) ** 2)
    return float(10 * np.log10(255 ** 2 / max(error, 1e-6)))


def colours_right(scene, image) -> tuple[bool, bool]:
    found = analyse(image) or {}
    return found.get("color") == scene.shapes[0].color, found.get("background") == scene.background


def shape_right(scene, image) -> bool:
    found = analyse(image) or {}
    return "features" in found and classify_shape(found["features"]) == scene.shapes[0].kind


def measure(pipe, count: int, cfg: float = 7.0) -> dict:
    from engine import GenerationRequest, ZeroShotEdit
    rows = {}

    def run(text, seed, steps, edit=None):
        start = time.perf_counter()
        extra = dict(zero_shot=edit, denoising_strength=1.0) if edit is not None else {}
        image = pipe.generate(GenerationRequest(prompt=text, sampler="LCM", steps=steps, cfg_scale=cfg, seed=seed,
                                                width=pipe.native_size, height=pipe.native_size, **extra)).images[0]
        return image, time.perf_counter() - start

    def add(name, values):
        rows.setdefault(name, []).append(values)

    for seed, scene, text in held_out_cases(count):
        truth = render(scene)
        grey = truth.convert("L").convert("RGB")
        small = truth.resize((16, 16), Image.BOX)
        bicubic = small.resize(truth.size, Image.BICUBIC)
        add("greyscale input", (*colours_right(scene, grey), 0.0))
        add("bicubic", (psnr(bicubic, truth), shape_right(scene, bicubic), 0.0))
        for steps in STEPS:
            image, seconds = run(text, seed, steps)
            add(f"txt2img {steps}", (*colours_right(scene, image), seconds))
            image, seconds = run(text, seed, steps, ZeroShotEdit("Colorize", grey))
            add(f"colorize {steps}", (*colours_right(scene, image), seconds))
            image, seconds = run(text, seed, steps, ZeroShotEdit("Super-resolve", small, scale=4))
            add(f"super-resolve {steps}", (psnr(image, truth), shape_right(scene, image), seconds))
    return {name: tuple(np.mean(values, axis=0)) for name, values in rows.items()}


def report(results: dict, count: int, model: str) -> str:
    lines = [f"{model}: {count} held-out scenes prompted with their captions, LCM, CFG 7, 64x64", "",
             "| colorization | colour of the named shape | background | time per picture |",
             "| --- | --- | --- | --- |"]
    colour, background, _ = results["greyscale input"]
    lines.append(f"| the greyscale input | {colour:.1%} | {background:.1%} | - |")
    for steps in STEPS:
        for kind in ("txt2img", "colorize"):
            colour, background, seconds = results[f"{kind} {steps}"]
            label = "txt2img (no picture)" if kind == "txt2img" else "colorize the greyscale"
            lines.append(f"| {label}, {steps} step{'s' * (steps > 1)} | {colour:.1%} | {background:.1%} | "
                         f"{seconds:.3f} s |")
    lines += ["", "| super-resolution 16x16 -> 64x64 | PSNR | shape | time per picture |", "| --- | --- | --- | --- |"]
    value, shape, _ = results["bicubic"]
    lines.append(f"| bicubic upsampling | {value:.2f} dB | {shape:.1%} | - |")
    for steps in STEPS:
        value, shape, seconds = results[f"super-resolve {steps}"]
        lines.append(f"| zero-shot, {steps} step{'s' * (steps > 1)} | {value:.2f} dB | {shape:.1%} | {seconds:.3f} s |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/Stable-diffusion/starter-lcm")
    parser.add_argument("--scenes", type=int, default=60)
    parser.add_argument("--out", default=str(RUNS / "eval-zero-shot.md"))
    args = parser.parse_args(argv)
    from engine import Device, load_pipeline
    pipe = load_pipeline(args.model, Device.cpu_fp32())
    write_report(report(measure(pipe, args.scenes), args.scenes, args.model), args.out)


if __name__ == "__main__":
    main()
