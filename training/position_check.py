"""Does a starter model place its shape by the words or by the noise? The two checks behind the README's notes.

    python -m training.position_check --model models/Stable-diffusion/starter

1. Words: the same seeds under each of the nine position phrases. "follows the words" counts the pictures whose
   shape lands where the phrase says; "same place under every phrase" counts the seeds whose shape lands in
   one place whatever the phrase, i.e. where the noise alone decided.
2. Leak: img2img at denoising strength 1.0 from a picture with the shape in the top left, while the prompt
   says "at the bottom". That starts from x_0 + sigma_max * noise, what the model saw at t = 999 in training:
   on SD's schedule 0.068 of the picture is left in it (none on a zero-terminal-SNR schedule).
"""
import argparse
from collections import Counter

from engine import Device, GenerationRequest, load_pipeline
from training.evaluate import analyse
from training.scenes import POSITION_WORDS, POSITIONS, Scene, Shape, render

PROMPT = "a large red circle {where} on a white background"


def position_of(pipe, prompt: str, seed: int, init=None) -> str | None:
    request = GenerationRequest(prompt=prompt, steps=20, width=pipe.native_size, height=pipe.native_size, seed=seed,
                                init_image=init, denoising_strength=1.0)
    return (analyse(pipe.generate(request).images[0]) or {}).get("position")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/Stable-diffusion/starter")
    parser.add_argument("--seeds", type=int, default=6)
    args = parser.parse_args(argv)
    pipe = load_pipeline(args.model, Device.cpu_fp32())
    seeds = range(args.seeds)
    found = {p: [position_of(pipe, PROMPT.format(where=POSITION_WORDS[p][0]), s) for s in seeds] for p in POSITIONS}
    follows = sum(f == p for p, places in found.items() for f in places)
    fixed = sum(len({found[p][i] for p in POSITIONS}) == 1 for i in range(len(seeds)))
    print(f"{args.model}: follows the words {follows}/{len(found) * len(seeds)}, "
          f"same place under every phrase {fixed}/{len(seeds)} seeds")
    init = render(Scene("white", (Shape("circle", "red", "large", "top left"),)))
    leak = Counter(position_of(pipe, PROMPT.format(where="at the bottom"), s, init) for s in range(2 * args.seeds))
    print(f"from a top-left picture at strength 1.0, prompt 'at the bottom': top left {leak['top left']}, "
          f"bottom {leak['bottom']}, elsewhere {sum(leak.values()) - leak['top left'] - leak['bottom']}")


if __name__ == "__main__":
    main()
