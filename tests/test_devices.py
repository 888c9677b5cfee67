"""Device choice and the process set-up webui.py makes for the CPU."""
import subprocess
import sys

import pytest
import torch

from engine import Device

TOUCH_BIG_TENSORS = """
import resource, sys, torch
from engine.devices import keep_freed_memory_for_reuse
if sys.argv[1] == "keep":
    assert keep_freed_memory_for_reuse()
faults = []
for _ in range(10):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = torch.empty(8192, 2560)      # 84 MB, as a UNet step's GEGLU projection at 512x512
    a.fill_(1.0)
    del a
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(sum(faults[-4:]))   # once the heap has settled
"""


def page_faults_of_the_last_four(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", TOUCH_BIG_TENSORS, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_kept_memory_is_not_page_faulted_in_again():
    plain, kept = page_faults_of_the_last_four("plain"), page_faults_of_the_last_four("keep")
    assert plain > 4 * 20_000          # glibc unmaps each 84 MB block and faults its ~20,000 pages in anew
    assert kept < 1_000                # the same block comes back from the heap, already mapped


def test_device_choice():
    assert Device.choose("cpu", "fp32") == Device(torch.device("cpu"), torch.float32)
    assert Device.choose("cpu", "bf16").dtype == torch.bfloat16
    with pytest.raises(ValueError, match="precision must be one of"):
        Device.choose("cpu", "fp8")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            Device.choose("cuda")
