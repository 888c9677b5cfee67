"""Does the starter understand prompts written as people write them? Held-out phrasings, never trained on.

    python -m training.evaluate_phrasing --images 240

Each held-out single-shape scene is prompted in one of `held_out_phrasings.FRAMES` (fixed seeds, DPM++ 2M,
20 steps, CFG 7) and the picture scored as `training.evaluate` scores its own captions: the named shape's
colour, its shape, its place (only where the prompt names one) and the background colour.
Writes training/runs/eval-phrasing.md.
"""
import argparse

from training.common import RUNS
from training.evaluate import score
from training.evaluate_adherence import write_report
from training.held_out_phrasings import FRAMES, held_out_phrasing_cases
from training.scenes import POSITION_WORDS

TARGETS = {"color": 0.9, "background": 0.9}


def names_a_place(prompt: str) -> bool:
    return any(phrase in prompt for phrases in POSITION_WORDS.values() for phrase in phrases)


def measure(pipe, count: int, steps: int = 20, cfg: float = 7.0) -> dict:
    """{criterion: share right} over `count` held-out phrasings (position over those that name a place)."""
    from engine import GenerationRequest
    totals, counts = {}, {}
    for seed, scene, prompt in held_out_phrasing_cases(count):
        image = pipe.generate(GenerationRequest(prompt=prompt, sampler="DPM++ 2M", steps=steps, cfg_scale=cfg,
                                                width=pipe.native_size, height=pipe.native_size, seed=seed)).images[0]
        for key, ok in score(scene, image).items():
            if key == "position" and not names_a_place(prompt):
                continue
            totals[key] = totals.get(key, 0) + ok
            counts[key] = counts.get(key, 0) + 1
    return {key: totals[key] / counts[key] for key in totals}


def report(results: dict, count: int, model: str) -> str:
    lines = [f"{model}: {count} held-out phrasings ({len(FRAMES)} sentence frames no training caption uses), "
             "DPM++ 2M 20 steps, CFG 7", "", "| measure | result | target |", "| --- | --- | --- |"]
    for key, value in results.items():
        target = f">= {TARGETS[key]:.0%}" if key in TARGETS else "-"
        lines.append(f"| {key} accuracy | {value:.1%} | {target} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/Stable-diffusion/starter")
    parser.add_argument("--images", type=int, default=240)
    parser.add_argument("--out", default=str(RUNS / "eval-phrasing.md"))
    args = parser.parse_args(argv)
    from engine import Device, load_pipeline
    pipe = load_pipeline(args.model, Device.cpu_fp32())
    write_report(report(measure(pipe, args.images), args.images, args.model), args.out)


if __name__ == "__main__":
    main()
