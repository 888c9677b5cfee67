"""The engine against diffusers on the same work, with the same random SD1.5-architecture weights.

    python -m bench.engine_vs_diffusers              # every case at 512x512 and 256x256 -> BENCHMARKS.md
    python -m bench.engine_vs_diffusers --quick      # the 256x256 variant only

Both sides load one diffusers folder (written once to --cache), each in a worker process of its own set up as
its users run it (the engine as webui.py starts it, with freed memory kept for reuse; diffusers as it comes).
Within a case the two workers take turns after a warm-up run each, and every figure is the median over
--repeats runs. Per phase: prompt encode (prompt and
negative prompt, cache cleared), one UNet step (the median gap between step callbacks in a full run, so the
sampler's own work counts), VAE decode, and the whole generation end to end. Peak RSS comes from a fresh
process per side (load, then one 2-step picture), as a user would see it.

Cases: (1) DPM++ 2M Karras, CFG 7, equal precision, fp32 and bf16; (2) each side's defaults for a 20-step
picture (the engine: auto precision, DPM++ 2M Karras, CFG 7; diffusers: fp32, the folder's PNDM scheduler,
CFG 7.5); (3) the engine's LCM at 4 steps and 1 step (CFG 1, one UNet pass a step) against diffusers' default
20-step run; (4) the same at 256x256.
"""
import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

PROMPT = "a photograph of an astronaut riding a horse on the moon, highly detailed"
NEGATIVE = "blurry, low quality"
SD15_SCHEDULER = {"_class_name": "PNDMScheduler", "beta_start": 0.00085, "beta_end": 0.012,
                  "beta_schedule": "scaled_linear", "num_train_timesteps": 1000, "set_alpha_to_one": False,
                  "skip_prk_steps": True, "steps_offset": 1, "prediction_type": "epsilon"}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


# ---------------------------------------------------------------- the shared model
def build_folder(cache: Path, tiny: bool = False) -> Path:
    """A diffusers folder of SD1.5's architecture with seeded random weights (about 4.3 GB in fp32); `tiny`:
    the test suite's tiny architecture instead, to check this script quickly."""
    folder = cache / ("tiny-random" if tiny else "sd15-random")
    if (folder / "model_index.json").exists():
        return folder
    from tests import reference
    sizes = ((reference.TINY_UNET, reference.TINY_VAE, reference.TINY_CLIP) if tiny
             else (reference.SD15_UNET, reference.SD15_VAE, reference.SD15_CLIP))
    unet, vae, clip = reference.reference_models(*sizes, seed=0)
    save_diffusers_folder = reference.save_diffusers_folder
    save_diffusers_folder(folder, unet, vae, clip)
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(SD15_SCHEDULER))
    write_tokenizer_files(folder / "tokenizer")
    return folder


def write_tokenizer_files(folder: Path) -> None:
    """vocab.json and merges.txt for transformers' CLIPTokenizer, from the vocabulary the engine ships."""
    from engine.tokenizer import vocabulary
    encoder, merges = vocabulary()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(encoder))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")


def engine_side(folder: Path, dtype: torch.dtype):
    from engine import Device, load_pipeline
    return load_pipeline(folder, Device(torch.device("cpu"), dtype))


def diffusers_side(folder: Path, dtype: torch.dtype):
    import diffusers
    import transformers
    pipe = diffusers.StableDiffusionPipeline(
        vae=diffusers.AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=dtype),
        text_encoder=transformers.CLIPTextModel.from_pretrained(folder / "text_encoder", torch_dtype=dtype),
        tokenizer=transformers.CLIPTokenizer(str(folder / "tokenizer" / "vocab.json"),
                                             str(folder / "tokenizer" / "merges.txt"), model_max_length=77),
        unet=diffusers.UNet2DConditionModel.from_pretrained(folder / "unet", torch_dtype=dtype),
        scheduler=diffusers.PNDMScheduler.from_pretrained(folder / "scheduler"),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def karras_dpmpp_2m(pipe):
    import diffusers
    return diffusers.DPMSolverMultistepScheduler.from_config(pipe.scheduler.config, use_karras_sigmas=True,
                                                             algorithm_type="dpmsolver++", solver_order=2)


# ---------------------------------------------------------------- a worker process per side
def this_script(folder: Path, *args: str) -> list[str]:
    """The command line that runs this script again in a child process on the same model folder."""
    return [sys.executable, "-m", "bench.engine_vs_diffusers", *args, "--cache", str(folder.parent),
            *(["--tiny"] if folder.name.startswith("tiny") else [])]



class Worker:
    """One side in a process of its own: `run(size, steps, cfg, sampler)` -> its figures."""

    def __init__(self, folder: Path, side: str, precision: str, scheduler: str = "default"):
        self.process = subprocess.Popen(
            this_script(folder, "--worker", side, "--precision", precision, "--scheduler", scheduler),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[1])
        self.label = self._read()["ready"]

    def run(self, size: int, steps: int, cfg: float, sampler: str = "DPM++ 2M") -> dict:
        self.process.stdin.write(json.dumps({"size": size, "steps": steps, "cfg": cfg, "sampler": sampler}) + "\n")
        self.process.stdin.flush()
        return self._read()

    def _read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"benchmark worker ended (exit code {self.process.wait()})")
        return json.loads(line)

    def close(self):
        self.process.stdin.close()
        self.process.wait()


def serve(folder: Path, side: str, precision: str, scheduler: str) -> None:
    """The worker's side of Worker: load, say ready, then answer one JSON line per run."""
    if side == "engine":
        from engine import Device
        from engine.devices import keep_freed_memory_for_reuse
        keep_freed_memory_for_reuse()                      # as webui.py does at start-up
        device = Device.choose("cpu", precision)
        pipe = engine_side(folder, device.dtype)
        label = str(device)
        run = lambda r: run_engine(pipe, r["size"], r["steps"], r["cfg"], r["sampler"])  # noqa: E731
    else:
        pipe = diffusers_side(folder, DTYPES[precision])
        if scheduler == "dpmpp_2m_karras":
            pipe.scheduler = karras_dpmpp_2m(pipe)
        label = f"diffusers {precision}"
        run = lambda r: run_diffusers(pipe, r["size"], r["steps"], r["cfg"])  # noqa: E731
    print(json.dumps({"ready": label}), flush=True)
    for line in sys.stdin:
        print(json.dumps(run(json.loads(line))), flush=True)


# ---------------------------------------------------------------- one run of each side
def run_engine(pipe, size: int, steps: int, cfg: float, sampler: str = "DPM++ 2M") -> dict:
    from engine import GenerationRequest
    stamps = []
    start = time.perf_counter()
    pipe.generate(GenerationRequest(prompt=PROMPT, negative_prompt=NEGATIVE, sampler=sampler, steps=steps,
                                    cfg_scale=cfg, width=size, height=size, seed=1),
                  progress=lambda *_: stamps.append(time.perf_counter()))
    total = time.perf_counter() - start
    down = pipe.vae.config.downscale
    latents = torch.randn(1, 4, size // down, size // down)
    t0 = time.perf_counter()
    pipe.prompts.clear()
    pipe.prompts(PROMPT, 1), pipe.prompts(NEGATIVE, 1)
    t1 = time.perf_counter()
    pipe.decode_latents(latents)
    t2 = time.perf_counter()
    return {"encode": t1 - t0, "step": step_time(stamps), "decode": t2 - t1, "total": total}


def run_diffusers(pipe, size: int, steps: int, cfg: float) -> dict:
    stamps = []

    def on_step(p, i, t, kwargs):
        stamps.append(time.perf_counter())
        return kwargs
    start = time.perf_counter()
    with torch.no_grad():
        pipe(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=steps, guidance_scale=cfg, width=size,
             height=size, generator=torch.Generator().manual_seed(1), callback_on_step_end=on_step)
    total = time.perf_counter() - start
    down = pipe.vae_scale_factor
    latents = torch.randn(1, 4, size // down, size // down, dtype=pipe.vae.dtype)
    with torch.no_grad():
        t0 = time.perf_counter()
        pipe.encode_prompt(PROMPT, "cpu", 1, True, NEGATIVE)
        t1 = time.perf_counter()
        pipe.vae.decode(latents / pipe.vae.config.scaling_factor)
        t2 = time.perf_counter()
    return {"encode": t1 - t0, "step": step_time(stamps), "decode": t2 - t1, "total": total}


def step_time(stamps: list[float]) -> float:
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    return statistics.median(gaps) if gaps else float("nan")


def alternate(runs: dict, steps: int, repeats: int) -> dict:
    """{side: run(steps)} -> {side: median figures}: a one-step warm-up each, then the sides take turns."""
    for run in runs.values():
        run(1)
    figures = {side: [] for side in runs}
    for _ in range(repeats):
        for side, run in runs.items():
            figures[side].append(run(steps))
    return {side: {k: statistics.median(r[k] for r in results) for k in results[0]}
            for side, results in figures.items()}


# ---------------------------------------------------------------- peak memory in a fresh process
def peak_rss(folder: Path, side: str, size: int) -> float:
    """GiB: a fresh process loads its side in its default precision and makes one 2-step picture."""
    out = subprocess.run(this_script(folder, "--rss-child", side, "--size", str(size)),
                         capture_output=True, text=True, check=True, cwd=Path(__file__).parents[1])
    return float(out.stdout.strip().splitlines()[-1])


def rss_child(folder: Path, side: str, size: int) -> None:
    if side == "engine":
        from engine import Device, load_pipeline
        from engine.devices import keep_freed_memory_for_reuse
        keep_freed_memory_for_reuse()
        run_engine(load_pipeline(folder, Device.choose("cpu")), size, 2, 7.0)
    else:
        run_diffusers(diffusers_side(folder, torch.float32), size, 2, 7.5)
    print(peak_of_this_process())


def peak_of_this_process() -> float:
    """GiB. VmHWM belongs to this program's own memory map; ru_maxrss would carry the parent's peak across
    fork + exec (Linux keeps the larger of the two)."""
    status = Path("/proc/self/status")
    if status.exists():
        line = next(line for line in status.read_text().splitlines() if line.startswith("VmHWM:"))
        return int(line.split()[1]) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


# ---------------------------------------------------------------- the cases
def cases(folder: Path, size: int, repeats: int, steps_equal: int, precisions: list[str],
          rss_runs: int = 3) -> list[dict]:
    rows = []
    for name in precisions:
        engine, reference = Worker(folder, "engine", name), Worker(folder, "diffusers", name, "dpmpp_2m_karras")
        medians = alternate({"engine": lambda n: engine.run(size, n, 7.0),
                             "diffusers": lambda n: reference.run(size, n, 7.0)}, steps_equal, repeats)
        rows.append({"case": f"{size}x{size} DPM++ 2M Karras CFG 7, {steps_equal} steps, {name} both", **pair(medians)})
        engine.close(), reference.close()

    engine, reference = Worker(folder, "engine", "auto"), Worker(folder, "diffusers", "fp32")
    medians = alternate({"engine": lambda n: engine.run(size, n, 7.0),
                         "diffusers": lambda n: reference.run(size, n, 7.5)}, 20, max(1, repeats // 2))
    rows.append({"case": f"{size}x{size} defaults, 20 steps (engine {engine.label}, diffusers fp32 PNDM)", **pair(medians)})
    reference.close()
    default_total = medians["diffusers"]["total"]
    for steps in (4, 1):
        lcm = alternate({"engine": lambda n: engine.run(size, n, 1.0, "LCM")}, steps, repeats)["engine"]
        rows.append({"case": f"{size}x{size} engine LCM {steps} step(s), CFG 1 ({engine.label}) vs diffusers default "
                             f"20 steps",
                     "engine": {"total": lcm["total"]}, "diffusers": {"total": default_total},
                     "ratio": lcm["total"] / default_total})
    engine.close()
    # the peak moves by up to 0.2 GiB between identical runs (where the allocator's arenas happen to land)
    rss = {side: statistics.median(peak_rss(folder, side, size) for _ in range(rss_runs))
           for side in ("engine", "diffusers")}
    rows.append({"case": f"{size}x{size} peak RSS, GiB (median of {rss_runs} fresh processes: load + one 2-step "
                         f"picture, defaults)",
                 "engine": {"rss": rss["engine"]}, "diffusers": {"rss": rss["diffusers"]},
                 "ratio": rss["engine"] / rss["diffusers"]})
    return rows


def pair(medians: dict) -> dict:
    return {"engine": medians["engine"], "diffusers": medians["diffusers"],
            "ratio": {k: medians["engine"][k] / medians["diffusers"][k] for k in medians["engine"]}}


# ---------------------------------------------------------------- the report
def machine() -> str:
    import diffusers
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in flags.splitlines() if line.startswith("model name")),
                 platform.processor())
    isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags.split()]
    return (f"{model}; {os.cpu_count()} logical cores, torch threads {torch.get_num_threads()}; ISA: "
            f"{', '.join(isa) or 'none listed'}; torch {torch.__version__}, diffusers {diffusers.__version__}, "
            f"Python {platform.python_version()}")


def write_report(out: Path, title: str, script: str, argv, body: str) -> str:
    """A benchmark's Markdown report: what made it, when, on which machine, then `body`; printed too."""
    command = " ".join(["python -m", script, *(argv if argv is not None else sys.argv[1:])])
    text = f"# {title}\n\nWritten by `{command}` on {time.strftime('%Y-%m-%d')}.\n\nMachine: {machine()}.\n\n{body}\n"
    out.write_text(text)
    print(text)
    return text


def table(rows: list[dict]) -> str:
    lines = ["| case | phase | engine | diffusers | engine / diffusers |", "| --- | --- | --- | --- | --- |"]
    for row in rows:
        ratio = row["ratio"]
        for phase, value in row["engine"].items():
            other = row["diffusers"][phase]
            r = ratio[phase] if isinstance(ratio, dict) else ratio
            unit = " GiB" if phase == "rss" else " s"
            lines.append(f"| {row['case']} | {phase} | {value:.3f}{unit} | {other:.3f}{unit} | {r:.3f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the 256x256 variant")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--steps", type=int, default=4, help="steps of the equal-precision runs")
    parser.add_argument("--rss-runs", type=int, default=3, help="fresh processes per side for the peak RSS")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "sd-studio-bench")
    parser.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "BENCHMARKS.md")
    parser.add_argument("--tiny", action="store_true", help="a tiny model instead of SD1.5's size: checks the script")
    parser.add_argument("--sizes", type=int, nargs="+", help="picture sides instead of 512 and 256")
    parser.add_argument("--precisions", nargs="+", choices=list(DTYPES),
                        help="of the equal-precision case (default: fp32, and bf16 where the CPU runs it natively)")
    parser.add_argument("--rss-child", choices=["engine", "diffusers"], help=argparse.SUPPRESS)
    parser.add_argument("--worker", choices=["engine", "diffusers"], help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="auto", help=argparse.SUPPRESS)
    parser.add_argument("--scheduler", default="default", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=512, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    folder = build_folder(args.cache, args.tiny)
    if args.rss_child:
        rss_child(folder, args.rss_child, args.size)
        return
    if args.worker:
        serve(folder, args.worker, args.precision, args.scheduler)
        return
    from engine.devices import cpu_has_fast_bf16
    sizes = args.sizes or ([256] if args.quick else [512, 256])
    precisions = args.precisions or (["fp32", "bf16"] if cpu_has_fast_bf16() else ["fp32"])
    started = time.time()
    rows = [row for size in sizes
            for row in cases(folder, size, args.repeats, args.steps, precisions, args.rss_runs)]
    command = " ".join(["python -m bench.engine_vs_diffusers", *(argv if argv is not None else sys.argv[1:])])
    text = (f"# Benchmarks\n\nMade by `{command}` ({(time.time() - started) / 60:.0f} min), "
            f"{time.strftime('%Y-%m-%d')}.\n\nMachine: {machine()}.\n\nSD1.5 architecture, random weights, "
            f"medians of {args.repeats} alternating runs after a warm-up. \"step\" is one UNet step with its "
            f"sampler work (two UNet passes at CFG > 1); \"encode\" covers prompt and negative prompt."
            + ("" if "bf16" in precisions else " No bf16 case: this CPU has no native bf16 (avx512_bf16 or AMX), "
               "where bf16 is emulated and slower than fp32; `--precisions fp32 bf16` runs it anyway.")
            + "\n\n"
            f"{table(rows)}\n")
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
