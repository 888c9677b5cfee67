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
for _ in range(20):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = torch.empty(8192, 2560)      # 84 MB, as a UNet step's GEGLU projection at 512x512
    a.fill_(1.0)
    del a
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(sum(f > 10_000 for f in faults[-10:]))   # of the last ten, those that faulted the block's pages in again
"""


def blocks_faulted_in_again(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", TOUCH_BIG_TENSORS, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_kept_memory_is_not_page_faulted_in_again():
    """Plain glibc unmaps each 84 MB block and faults its ~20,000 pages in anew every time; kept, the block
    comes back from the heap already mapped once the heap has settled (which takes a varying few rounds:
    in 20 runs on an AVX2 EPYC one still faulted once in its last four of ten)."""
    assert blocks_faulted_in_again("plain") == 10
    assert blocks_faulted_in_again("keep") <= 2


def test_device_choice():
    assert Device.choose("cpu", "fp32") == Device(torch.device("cpu"), torch.float32)
    assert Device.choose("cpu", "bf16").dtype == torch.bfloat16
    with pytest.raises(ValueError, match="precision must be one of"):
        Device.choose("cpu", "fp8")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            Device.choose("cuda")
