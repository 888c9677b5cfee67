"""SDXL: one UNet step, the engine against diffusers, at equal precision, with the same random weights.

    python -m bench.sdxl_unet_step                     # full-size SDXL base, 768x768 and 1024x1024, fp32
    python -m bench.sdxl_unet_step --tiny --sizes 64   # the slim test UNet, to check the script quickly
    python -m bench.sdxl_unet_step --worker engine --folder /tmp/studio-bench/sdxl-unet-random --size 768 \
        --repeats 1 --profile                          # one side's operators, to see where the time goes

A diffusers `unet/` folder of SDXL base's architecture (2.6 B parameters, 10.3 GB in fp32) with seeded random
weights is written once to --cache. Each side then runs in a fresh worker process of its own, as its users run
it (the engine with freed memory kept for reuse, as webui.py starts it; diffusers as it comes): it loads the
UNet, makes one warm-up call and --repeats timed calls on a classifier-free-guidance batch (two rows: prompt
and negative prompt; a 77-token context 2048 wide, the pooled 1280 and six size ids), and reports the median
call and its own peak RSS. A sampler step at CFG > 1 is this call plus a few element-wise operations.
Results go to BENCHMARKS-SDXL.md.
"""
import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from bench.engine_vs_diffusers import DTYPES, peak_of_this_process, write_report


def build_unet_folder(cache: Path, tiny: bool) -> Path:
    folder = cache / ("sdxl-unet-slim" if tiny else "sdxl-unet-random")
    if (folder / "config.json").exists():
        return folder
    import diffusers

    from tests.test_sdxl_parity import SDXL_BASE_UNET
    from tests.test_sdxl_pipeline import SLIM_UNET
    torch.manual_seed(0)
    with torch.no_grad():
        unet = diffusers.UNet2DConditionModel(**(SLIM_UNET if tiny else SDXL_BASE_UNET))
    unet.save_pretrained(folder)
    return folder


def inputs(config: dict, size: int):
    g = torch.Generator().manual_seed(1)
    latent = size // 8
    pooled = config["projection_class_embeddings_input_dim"] - 6 * config["addition_time_embed_dim"]
    return dict(sample=torch.randn(2, 4, latent, latent, generator=g), timestep=torch.tensor([500.0, 500.0]),
                context=torch.randn(2, 77, config["cross_attention_dim"], generator=g),
                text_embeds=torch.randn(2, pooled, generator=g),
                time_ids=torch.tensor([[size, size, 0, 0, size, size]] * 2, dtype=torch.float32))


def worker(folder: Path, side: str, precision: str, size: int, repeats: int, profile: bool = False) -> dict:
    dtype = DTYPES[precision]
    config = json.loads((folder / "config.json").read_text())
    x = inputs(config, size)
    if side == "engine":
        from engine.devices import keep_freed_memory_for_reuse
        from engine.loading.diffusers_folder import load_unet_folder
        keep_freed_memory_for_reuse()
        unet = load_unet_folder(folder, dtype, torch.device("cpu"))
        call = lambda: unet(x["sample"].to(dtype), x["timestep"], x["context"].to(dtype),  # noqa: E731
                            text_embeds=x["text_embeds"], time_ids=x["time_ids"])
    else:
        import diffusers
        unet = diffusers.UNet2DConditionModel.from_pretrained(folder, torch_dtype=dtype).eval()
        added = {"text_embeds": x["text_embeds"].to(dtype), "time_ids": x["time_ids"].to(dtype)}
        call = lambda: unet(x["sample"].to(dtype), x["timestep"], x["context"].to(dtype),  # noqa: E731
                            added_cond_kwargs=added, return_dict=False)[0]
    times = []
    with torch.inference_mode():
        for i in range(repeats + 1):
            start = time.perf_counter()
            call()
            if i:                       # the first call is the warm-up
                times.append(time.perf_counter() - start)
        if profile:                     # one more call, its operators to stderr
            from torch.profiler import profile as profiled
            with profiled(record_shapes=True) as trace:
                call()
            print(trace.key_averages().table(sort_by="self_cpu_time_total", row_limit=20), file=sys.stderr)
            print(trace.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total",
                                                                       row_limit=30), file=sys.stderr)
    return {"step_s": statistics.median(times), "rss_gib": peak_of_this_process()}


def run_worker(folder: Path, side: str, precision: str, size: int, repeats: int) -> dict:
    command = [sys.executable, "-m", "bench.sdxl_unet_step", "--worker", side, "--folder", str(folder),
               "--precision", precision, "--size", str(size), "--repeats", str(repeats)]
    out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=Path(__file__).parents[1])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[768, 1024])
    parser.add_argument("--precisions", nargs="+", default=["fp32"], choices=list(DTYPES))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/studio-bench"))
    parser.add_argument("--out", type=Path, default=Path("BENCHMARKS-SDXL.md"))
    parser.add_argument("--worker", choices=["engine", "diffusers"])
    parser.add_argument("--folder", type=Path)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--size", type=int)
    parser.add_argument("--profile", action="store_true", help="worker: profile one more call (to stderr)")
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.folder, args.worker, args.precision, args.size, args.repeats,
                                args.profile)))
        return ""
    folder = build_unet_folder(args.cache, args.tiny)
    rows = ["| case | engine | diffusers | engine / diffusers |", "|---|---|---|---|"]
    for precision in args.precisions:
        for size in args.sizes:
            ours = run_worker(folder, "engine", precision, size, args.repeats)
            ref = run_worker(folder, "diffusers", precision, size, args.repeats)
            label = f"{size}x{size} {precision}"
            rows.append(f"| {label} UNet step (CFG batch of 2) | {ours['step_s']:.2f} s | {ref['step_s']:.2f} s | "
                        f"{ours['step_s'] / ref['step_s']:.3f} |")
            rows.append(f"| {label} peak RSS | {ours['rss_gib']:.2f} GiB | {ref['rss_gib']:.2f} GiB | "
                        f"{ours['rss_gib'] / ref['rss_gib']:.3f} |")
    what = "slim test UNet" if args.tiny else "SDXL base architecture (2.6 B parameters)"
    body = (f"{what}, random weights; medians of {args.repeats} calls after a warm-up, each side in a fresh "
            f"process (peak RSS: load plus the calls).\n\n" + "\n".join(rows))
    return write_report(args.out, "SDXL UNet step: engine vs diffusers", "bench.sdxl_unet_step", argv, body)


if __name__ == "__main__":
    main()
