"""Does a starter ControlNet follow the map? Measured the way users meet it.

    python -m training.evaluate_adherence --scenes 40
    python -m training.evaluate_adherence --scenes 40 --controlnet models/ControlNet/starter-depth-normal \
        --styles depth,normal --out training/runs/eval-adherence-depth-normal.md

Held-out free scenes (shapes of any size at any place, seeds never used in training) are drawn as a user
would bring them: a 512-px picture through the canny or lineart_standard preprocessor at processor
resolution 512, or a hand-drawn black-on-white scribble through "invert". The app's preprocessor registry
makes the map and the engine fits it to the 64-px picture, as on the tabs and in the API. Prompts never say
where or how big: colours only ("something red on a blue background"), or the empty prompt with guess mode.
Each picture is made with the map and, at the same seed and prompt, without it:
- shape IoU: the output's foreground (pixels far from the median colour of its border) against the scene's
  true shapes;
- edge F1: the output's canny edges against the scene's true boundaries, 1 px tolerance;
- colours right (colour prompts): the foreground in one of the prompt's thing colours, the border in its
  background colour (a map that moves the shapes but loses the prompt's colours is not following the user).
A weight sweep (0 to 2, the last style's maps, colour prompts) shows that more weight means more adherence and
that weight 2 still gives a picture. `--styles depth,normal` measures starter-depth-normal the same way, from a
512-px layer-depth map as it is (depth tab, preprocessor none) and through depth_to_normal (normal tab).
Writes training/runs/eval-adherence.md.
"""
import argparse
import random

import numpy as np
from PIL import Image

from training.common import EVAL_SEED_START, RUNS
from training.evaluate_controlnet import canny_edges, edge_f1
from training.scenes import COLORS, colour_caption, free_scene, render, render_depth, render_edges
from training.user_maps import hand_scribble

PHOTO = 512
# style -> (preprocessor, what the user brings); a depth map is the scene's layer depth drawn at 512 px
STYLES = {"canny": ("canny", "photo"), "lineart": ("lineart_standard", "photo"), "scribble": ("invert", "scribble"),
          "depth": ("none", "depth"), "normal": ("depth_to_normal", "depth")}
EDGE_STYLES = ("canny", "lineart", "scribble")
PROMPTS = ("colours", "empty")
WEIGHTS = (0.0, 0.5, 1.0, 1.5, 2.0)


def foreground(image) -> np.ndarray:
    """Pixels far (> 50 of 255 in RGB distance) from the median colour of the picture's border."""
    a = np.asarray(image.convert("RGB"), np.float32)
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    return np.linalg.norm(a - np.median(border, axis=0), axis=2) > 50


def true_foreground(scene) -> np.ndarray:
    a = np.asarray(render(scene), np.float32)
    return np.linalg.norm(a - np.asarray(COLORS[scene.background], np.float32), axis=2) > 50


def shape_iou(truth: np.ndarray, found: np.ndarray) -> float:
    union = (truth | found).sum()
    return float((truth & found).sum() / union) if union else 1.0


def scores(scene, image) -> tuple[float, float]:
    """(shape IoU, edge F1) of a picture against the scene."""
    truth_edges = np.asarray(render_edges(scene))[..., 0] > 0
    return shape_iou(true_foreground(scene), foreground(image)), edge_f1(truth_edges, canny_edges(image))


def nearest_colours(pixels: np.ndarray) -> list[str]:
    """The name of the nearest scene colour of each (N, 3) pixel."""
    palette = np.asarray(list(COLORS.values()), np.float32)
    names = list(COLORS)
    return [names[i] for i in np.argmin(((pixels[:, None] - palette[None]) ** 2).sum(-1), axis=1)]


def colours_right(image, thing_colours, background: str) -> tuple[float, float]:
    """(1 if most foreground pixels are nearest one of the thing colours, 1 if most border pixels are nearest
    the background colour): the prompt's colours where the map put the things."""
    a = np.asarray(image.convert("RGB"), np.float32)
    found = foreground(image)
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    things = nearest_colours(a[found])
    thing = float(bool(things) and max(set(things), key=things.count) in thing_colours)
    edge = nearest_colours(border)
    return thing, float(max(set(edge), key=edge.count) == background)


def judged(scene, image) -> tuple:
    """(shape IoU, edge F1, thing colour right, background colour right)."""
    return (*scores(scene, image), *colours_right(image, {s.color for s in scene.shapes}, scene.background))


def held_out(count: int):
    """(seed, scene, colour-only prompt) of held-out free scenes."""
    cases = []
    for i in range(count):
        rng = random.Random(EVAL_SEED_START + 7_000_000 + i)
        scene = free_scene(rng)
        cases.append((EVAL_SEED_START + i, scene, colour_caption(scene, rng)))
    return cases


def user_input(style: str, scene, seed: int) -> np.ndarray:
    """What the user uploads or draws for this style: a 512-px picture, or a scribble."""
    if STYLES[style][1] == "scribble":
        return hand_scribble(scene, random.Random(seed), PHOTO)
    if STYLES[style][1] == "depth":
        return np.asarray(render_depth(scene).resize((PHOTO, PHOTO), Image.NEAREST))
    return np.asarray(render(scene, PHOTO))


def make_unit(annotators, controlnet, style: str, scene, seed: int, weight: float = 1.0, guess: bool = False):
    from engine.control import ControlUnit
    module = STYLES[style][0]
    brought = user_input(style, scene, seed)
    detected = brought if module == "none" else annotators.run(module, brought, PHOTO)   # grey maps read as RGB
    return ControlUnit(controlnet, Image.fromarray(detected), weight=weight, guess_mode=guess)


def generate(pipe, prompt: str, seed: int, units, steps: int):
    from engine import GenerationRequest
    size = pipe.native_size
    return pipe.generate(GenerationRequest(prompt=prompt, steps=steps, cfg_scale=7.0, width=size, height=size,
                                           seed=seed, control_units=units)).images[0]


def measure(pipe, controlnet, annotators, cases, steps: int = 20, styles=EDGE_STYLES) -> dict:
    """{(style, prompt): {"with": (iou, f1), "without": (iou, f1)}} and {weight: (iou, foreground share)}."""
    table = {}
    for style in styles:
        for prompt_kind in PROMPTS:
            rows = {"with": [], "without": []}
            for seed, scene, colours in cases:
                prompt = colours if prompt_kind == "colours" else ""
                unit = make_unit(annotators, controlnet, style, scene, seed, guess=prompt_kind == "empty")
                rows["with"].append(judged(scene, generate(pipe, prompt, seed, [unit], steps)))
                rows["without"].append(judged(scene, generate(pipe, prompt, seed, [], steps)))
            table[(style, prompt_kind)] = {k: tuple(np.mean(v, axis=0)) for k, v in rows.items()}
    sweep = {}
    for weight in WEIGHTS:
        values = []
        for seed, scene, colours in cases:
            image = generate(pipe, colours, seed, [make_unit(annotators, controlnet, styles[-1], scene, seed, weight)],
                             steps)
            values.append((scores(scene, image)[0], foreground(image).mean()))
        sweep[weight] = tuple(np.mean(values, axis=0))
    truth_share = float(np.mean([true_foreground(scene).mean() for _, scene, _ in cases]))
    return {"table": table, "sweep": sweep, "truth_share": truth_share}


def report(result: dict, count: int, name: str) -> str:
    lines = [f"{name}: {count} held-out free scenes, user-made maps fitted to 64 px, DPM++ 2M 20 steps, CFG 7", "",
             "| map (as the user makes it) | prompt | shape IoU with / without | edge F1 with / without "
             "| thing colour right with / without | background colour right with / without |",
             "| --- | --- | --- | --- | --- | --- |"]
    prompt_label = {"colours": "colours only", "empty": "empty, guess mode"}
    for (style, prompt), row in result["table"].items():
        (iw, fw, cw, bw), (io, fo, co, bo) = row["with"], row["without"]
        colours = f"| {cw:.0%} / {co:.0%} | {bw:.0%} / {bo:.0%} |" if prompt == "colours" else "| - | - |"
        lines.append(f"| {style} ({STYLES[style][0]}) | {prompt_label[prompt]} | {iw:.3f} / {io:.3f} "
                     f"| {fw:.3f} / {fo:.3f} {colours}")
    lines += ["", f"| weight ({next(reversed(result['table']))[0]}, colours only) | shape IoU "
              "| foreground share of the picture |",
              "| --- | --- | --- |"]
    lines += [f"| {w} | {iou:.3f} | {share:.3f} |" for w, (iou, share) in result["sweep"].items()]
    lines += ["", f"The scenes' shapes cover {result['truth_share']:.3f} of the picture."]
    return "\n".join(lines) + "\n"


def write_report(text: str, out) -> None:
    """The evaluation's markdown table into `out` (its folder made) and on the console."""
    from pathlib import Path
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(text)
    print(text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/Stable-diffusion/starter")
    parser.add_argument("--controlnet", default="models/ControlNet/starter-edges")
    parser.add_argument("--annotators", default="models/annotators", help="folder of annotator weights")
    parser.add_argument("--scenes", type=int, default=40)
    parser.add_argument("--styles", default=",".join(EDGE_STYLES), help=f"of {', '.join(STYLES)}; the last one is "
                        "swept over weights")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", default=str(RUNS / "eval-adherence.md"))
    args = parser.parse_args(argv)
    from pathlib import Path
    from engine import Device, load_pipeline
    from engine.loading.controlnet import load_controlnet
    from extensions import ExtensionAPI, load_extensions
    pipe = load_pipeline(args.model, Device.cpu_fp32())
    annotators = load_extensions(ExtensionAPI(Path(args.annotators)))
    result = measure(pipe, load_controlnet(Path(args.controlnet)), annotators, held_out(args.scenes), args.steps,
                     tuple(args.styles.split(",")))
    text = report(result, args.scenes, Path(args.controlnet).name)
    write_report(text, args.out)


if __name__ == "__main__":
    main()
