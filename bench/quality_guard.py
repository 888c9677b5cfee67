"""Reduced precision must not cost quality: the starter's pictures in bf16 against the same pictures in fp32.

    python -m bench.quality_guard --images 240

For held-out captions with fixed seeds (the starter evaluation's own), makes each picture in fp32 and in bf16
and reports the mean PSNR between the two (target >= 30 dB) and the starter evaluation's four accuracies in
each precision (target: within 2 points).
"""
import argparse

import numpy as np
import torch

from training.evaluate import held_out_cases, score


def psnr(a, b) -> float:
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/Stable-diffusion/starter")
    parser.add_argument("--images", type=int, default=240)
    parser.add_argument("--precision", default="bf16", choices=["bf16", "fp16"])
    args = parser.parse_args(argv)
    from engine import Device, GenerationRequest, load_pipeline
    from engine.devices import PRECISIONS
    pipes = {"fp32": load_pipeline(args.model, Device.cpu_fp32()),
             args.precision: load_pipeline(args.model, Device(torch.device("cpu"), PRECISIONS[args.precision]))}
    totals = {name: {"color": 0, "shape": 0, "position": 0, "background": 0} for name in pipes}
    ratios = []
    cases = held_out_cases(args.images)
    for seed, scene, text in cases:
        pictures = {}
        for name, pipe in pipes.items():
            size = pipe.native_size
            pictures[name] = pipe.generate(GenerationRequest(prompt=text, width=size, height=size, seed=seed)).images[0]
            for key, ok in score(scene, pictures[name]).items():
                totals[name][key] += ok
        ratios.append(psnr(pictures["fp32"], pictures[args.precision]))
    finite = [r for r in ratios if np.isfinite(r)]
    print(f"{args.model}, {len(cases)} held-out captions, DPM++ 2M 20 steps, CFG 7\n")
    print(f"PSNR {args.precision} vs fp32: mean {np.mean(finite) if finite else float('inf'):.1f} dB, "
          f"lowest {min(ratios):.1f} dB ({len(ratios) - len(finite)} identical pictures)\n")
    print("| precision | colour | shape | position | background |\n| --- | --- | --- | --- | --- |")
    for name, counts in totals.items():
        print(f"| {name} | " + " | ".join(f"{100 * v / len(cases):.1f} %" for v in counts.values()) + " |")


if __name__ == "__main__":
    main()
