"""Loading an SD1.5-size checkpoint holds about one copy of its tensors in memory, not two."""
import json
import subprocess
import sys

import diffusers
import pytest
import torch
import transformers
from safetensors.torch import save_file

from tests.reference import SD15_CLIP, SD15_UNET, SD15_VAE, ldm_state_dict

LIMIT = 1.3   # peak RSS growth while loading / bytes of the checkpoint's tensors

MEASURE = """
import json, sys, time
import torch
from engine import Device, load_pipeline
from engine.tokenizer import _backend
_backend()   # the tokenizer's vocabulary is not part of the weights
def status(field):   # /proc/self/status, in bytes; VmHWM is this address space's peak (ru_maxrss would
    # carry the forking parent's peak across exec)
    line = next(l for l in open("/proc/self/status") if l.startswith(field + ":"))
    return int(line.split()[1]) * 1024
before = status("VmRSS")
start = time.perf_counter()
pipe = load_pipeline(sys.argv[1], Device.cpu_fp32())
seconds = time.perf_counter() - start
peak = status("VmHWM")
print(json.dumps({"before": before, "peak": peak, "seconds": seconds}))
"""


@pytest.fixture(scope="module")
def sd15_tensors():
    """Original-layout tensors of the full SD1.5 architecture (UNet, VAE, CLIP ViT-L), random."""
    torch.manual_seed(0)
    with torch.device("meta"):
        modules = (diffusers.UNet2DConditionModel(**SD15_UNET), diffusers.AutoencoderKL(**SD15_VAE),
                   transformers.CLIPTextModel(transformers.CLIPTextConfig(**SD15_CLIP)))
    for module in modules:
        module.to_empty(device="cpu")
        with torch.no_grad():
            for p in module.parameters():
                p.normal_(0, 0.02)
    return ldm_state_dict(*modules)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["safetensors", "ckpt"])
def test_peak_memory_while_loading_sd15_checkpoint(tmp_path, fmt, sd15_tensors):
    path = tmp_path / f"sd15-random.{fmt}"
    if fmt == "safetensors":
        save_file(sd15_tensors, path)
    else:
        torch.save({"state_dict": sd15_tensors}, path)
    tensor_bytes = sum(t.numel() * t.element_size() for t in sd15_tensors.values())
    out = subprocess.run([sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True, check=True)
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    growth = (figures["peak"] - figures["before"]) / tensor_bytes
    print(f"SD1.5 single-file fp32 .{fmt}: tensors {tensor_bytes / 2**30:.2f} GiB, peak RSS growth {growth:.2f}x, "
          f"peak RSS {figures['peak'] / 2**30:.2f} GiB, load {figures['seconds']:.1f} s")
    assert growth <= LIMIT
