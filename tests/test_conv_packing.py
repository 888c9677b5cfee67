"""The engine's Conv2d: on the CPU its inference path keeps a reordered weight; the numbers must not change."""
import copy
import pickle

import pytest
import torch
import torch.nn.functional as F

from engine.models import conv
from engine.models.conv import Conv2d

pytestmark = pytest.mark.skipif(not conv.PACKING, reason="this torch build has no oneDNN convolution kernels")


def plain(module, x):
    return F.conv2d(x, module.weight, module.bias, module.stride, module.padding, module.dilation, module.groups)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("kernel, stride, padding", [(3, 1, 1), (3, 2, 1), (3, 2, 0), (1, 1, 0)])
def test_same_numbers_as_the_ordinary_kernel(dtype, kernel, stride, padding):
    torch.manual_seed(0)
    module = Conv2d(64, 96, kernel, stride=stride, padding=padding).to(dtype).eval()
    with torch.no_grad():
        for shape in ((2, 64, 8, 8), (1, 64, 13, 9), (3, 64, 16, 16)):   # one reordered weight serves every shape
            for layout in (torch.channels_last, torch.contiguous_format):
                x = torch.randn(shape, dtype=dtype).contiguous(memory_format=layout)
                ours, reference = module(x), plain(module, x)
                if shape[0] == 2 and layout == torch.channels_last and dtype == torch.float32:
                    assert torch.equal(ours, reference)     # oneDNN picks the same kernel: the very same bits
                tolerance = 1e-5 if dtype == torch.float32 else 1e-2   # else: the same sums, in another order
                assert (ours.float() - reference.float()).abs().max() <= tolerance * reference.float().abs().max()
    # the reordered path ran, except bf16 on a CPU whose oneDNN cannot reorder bf16 weights (AVX2 only)
    assert (module._packed is not None) == (dtype in conv.PACKED_DTYPES)


def test_follows_weight_changes_in_place_and_by_assignment():
    torch.manual_seed(0)
    module = Conv2d(8, 8, 3, padding=1).eval()
    x = torch.randn(1, 8, 6, 6)
    with torch.no_grad():
        before = module(x)
        module.weight.add_(1.0)                             # a LoRA patch in place
        patched = module(x)
        assert torch.allclose(patched, plain(module, x), atol=1e-4) and not torch.allclose(patched, before, atol=1)
        module.weight.data = module.weight.data - 1.0       # a LoRA restore by assignment
        assert torch.allclose(module(x), plain(module, x), atol=1e-5)
        assert torch.allclose(module(x), before, atol=1e-5)


def test_training_takes_the_ordinary_path_with_gradients():
    module = Conv2d(4, 4, 3, padding=1)
    x = torch.randn(1, 4, 5, 5, requires_grad=True)
    module(x).sum().backward()
    assert module.weight.grad is not None and x.grad is not None
    assert module._packed is None
    with torch.autocast("cpu", dtype=torch.bfloat16):      # autocast casts inputs itself: ordinary path too
        assert module(x.detach()).dtype == torch.bfloat16


def test_a_new_weight_in_the_old_ones_memory_is_not_mistaken_for_it():
    """One LoRA set swapped for another: the patched tensor is freed by the restore, and the next patch,
    made before any forward pass, may be allocated in the very memory the reordered copy was made from."""
    torch.manual_seed(0)
    module = Conv2d(16, 16, 3, padding=1).eval()
    original = module.weight.data
    x = torch.randn(1, 16, 6, 6)
    with torch.no_grad():
        for delta in (0.5, -0.25, 1.0, 0.125, 2.0, -1.0):
            module.weight.data = original + delta       # restore, then patch with the next set
            assert torch.allclose(module(x), plain(module, x), atol=1e-4), delta
            module.weight.data = original


def test_copies_and_pickles_make_their_own_reordered_weight():
    module = Conv2d(8, 8, 3, padding=1).eval()
    x = torch.randn(1, 8, 6, 6)
    with torch.no_grad():
        expected = module(x)
        assert module._packed is not None
        for twin in (copy.deepcopy(module), pickle.loads(pickle.dumps(module))):
            assert twin._packed is None
            twin.weight.mul_(2.0)                     # its own weight, not the original's
            assert torch.allclose(twin(x) - twin.bias[:, None, None], 2 * (expected - module.bias[:, None, None]),
                                  atol=1e-5)
        assert torch.equal(module(x), expected)
