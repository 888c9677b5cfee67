"""Peak memory while loading a full-size SDXL single file (SGM / A1111 layout, fp16 as most are shared).

    python -m bench.sdxl_load_memory            # builds the file once in --cache (about 6.9 GB), then measures
    python -m bench.sdxl_load_memory --tiny     # the slim test model, to check the script quickly

A fresh process loads the file with the engine's loader at each precision asked for and reports how far its
RSS grew over the weights it holds at that precision (the issue's bound: 1.15x), and its peak. Written to
BENCHMARKS-SDXL-LOAD.md.
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

from bench.engine_vs_diffusers import DTYPES, write_report

DTYPES = {**DTYPES, "fp16": torch.float16}
MEASURE = """
import json, sys, time
import torch
from engine import Device, load_pipeline
from engine.devices import keep_freed_memory_for_reuse
from engine.tokenizer import _backend
keep_freed_memory_for_reuse()
_backend()   # the tokenizer's vocabulary is not part of the weights
def status(field):
    line = next(l for l in open("/proc/self/status") if l.startswith(field + ":"))
    return int(line.split()[1]) * 1024
dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[sys.argv[2]]
before = status("VmRSS")
start = time.perf_counter()
pipe = load_pipeline(sys.argv[1], Device(torch.device("cpu"), dtype))
seconds = time.perf_counter() - start
modules = [pipe.unet, pipe.vae, *(t.encoder for t in pipe.prompts.towers)]
held = sum(p.numel() * p.element_size() for m in modules for p in m.parameters())
print(json.dumps({"before": before, "peak": status("VmHWM"), "held": held, "seconds": seconds,
                  "family": pipe.family}))
"""


def build_file(cache: Path, tiny: bool) -> Path:
    path = cache / ("sdxl-slim-fp16.safetensors" if tiny else "sdxl-random-fp16.safetensors")
    if path.exists():
        return path
    import diffusers
    import transformers
    from safetensors.torch import save_file

    from tests.reference import sgm_state_dict
    from tests.test_sdxl_parity import SDXL_BASE_UNET
    from tests.test_sdxl_pipeline import BIGG, CLIP_L, SDXL_VAE, SLIM_UNET
    full_clip_l = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                       max_position_embeddings=77, hidden_act="quick_gelu")
    full_bigg = dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
                     max_position_embeddings=77, hidden_act="gelu", projection_dim=1280)
    full_vae = dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                    scaling_factor=0.13025, sample_size=1024)
    with torch.device("meta"):
        modules = (diffusers.UNet2DConditionModel(**(SLIM_UNET if tiny else SDXL_BASE_UNET)),
                   diffusers.AutoencoderKL(**(SDXL_VAE if tiny else full_vae)),
                   transformers.CLIPTextModel(transformers.CLIPTextConfig(**(CLIP_L if tiny else full_clip_l))),
                   transformers.CLIPTextModelWithProjection(transformers.CLIPTextConfig(**(BIGG if tiny else full_bigg))))
    g = torch.Generator().manual_seed(0)
    for module in modules:
        module.to_empty(device="cpu").half()
        with torch.no_grad():
            for p in module.parameters():
                p.normal_(0, 0.02, generator=g)
    tensors = {k: v.contiguous() for k, v in sgm_state_dict(*modules).items()}
    del modules
    cache.mkdir(parents=True, exist_ok=True)
    save_file(tensors, path)
    return path


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precisions", nargs="+", default=["fp16", "fp32"], choices=list(DTYPES))
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/studio-bench"))
    parser.add_argument("--out", type=Path, default=Path("BENCHMARKS-SDXL-LOAD.md"))
    args = parser.parse_args(argv)
    path = build_file(args.cache, args.tiny)
    rows = ["| file | run precision | weights held | peak RSS growth | growth / weights | peak RSS | load |",
            "|---|---|---|---|---|---|---|"]
    for precision in args.precisions:
        out = subprocess.run([sys.executable, "-c", MEASURE, str(path), precision], capture_output=True, text=True,
                             check=True, cwd=Path(__file__).parents[1])
        f = json.loads(out.stdout.strip().splitlines()[-1])
        growth = f["peak"] - f["before"]
        rows.append(f"| {path.name} ({path.stat().st_size / 2**30:.2f} GiB, {f['family']}) | {precision} | "
                    f"{f['held'] / 2**30:.2f} GiB | {growth / 2**30:.2f} GiB | {growth / f['held']:.3f} | "
                    f"{f['peak'] / 2**30:.2f} GiB | {f['seconds']:.1f} s |")
    body = "Random weights in the SGM layout, fp16 file; a fresh process per precision.\n\n" + "\n".join(rows)
    return write_report(args.out, "Loading an SDXL single file: peak memory", "bench.sdxl_load_memory", argv, body)


if __name__ == "__main__":
    main()
