"""2-D convolution whose CPU inference kernel keeps its weight in oneDNN's blocked layout.

oneDNN, the library behind PyTorch's CPU convolutions, turns a plain weight into its own blocked layout on
every call. Where the latent is small and the kernel large (SD's 1280-channel blocks at 8x8 and 16x16) that
reorder costs more than the convolution: on 2 cores one 1280-channel 3x3 convolution of a CFG batch at 8x8
took 34.5 ms in fp32 and 7.1 ms in bf16 with a plain weight, 14.0 and 3.3 ms with a reordered one. The result
is the same convolution: bit for bit where oneDNN picks the same kernel, else the same sums in another order
(fp32 rounding). So the reordered weight is made once and kept; it serves inputs of any shape.

The reordered copy is a second copy of the weight, so it is made only where it pays: on the first call with
an input of at most 16x16 (PACK_AREA); after that it serves inputs of any shape. At larger sizes the reorder is
small beside the convolution: a full-size SDXL UNet step at 768x768 (levels 96, 48, 24) took 76.9 s with every
convolution reordered and 74.0 s with none (fp32, 2 AVX2 cores), and the copies held 1.24 GiB more.

The plain weight stays the module's parameter (state dicts, LoRA patches and ControlNet copies read it); the
reordered copy is made again whenever the parameter is replaced or changed in place. It is used only for
inference on the CPU (no autograd, no autocast), so training runs the ordinary kernel.
"""
import torch
from torch import nn


def _packing_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")


def _packed_dtypes() -> tuple[torch.dtype, ...]:
    """fp32 always; bf16 only where oneDNN can reorder bf16 weights (AVX-512 BW/VL/DQ, AVX-NE-CONVERT or AMX):
    on an AVX2-only CPU the reorder refuses, and bf16 runs the ordinary kernel."""
    return (torch.float32, torch.bfloat16) if torch.ops.mkldnn._is_mkldnn_bf16_supported() else (torch.float32,)


PACKING = _packing_available()
PACK_AREA = 16 * 16        # inputs of at most this many pixels make the reordered weight
PACKED_DTYPES = _packed_dtypes() if PACKING else ()


class Conv2d(nn.Conv2d):
    """nn.Conv2d (same parameters and state dict) with the reordered-weight CPU inference path."""

    # (the weight it was made from, that weight's version, the reordered weight). Holding the weight keeps
    # its memory from being handed to a new tensor, whose address would then pass for the old one's.
    _packed: tuple | None = None

    def __getstate__(self) -> dict:
        """Copies and pickles leave the reordered weight out (oneDNN's tensors cannot be copied); they make
        their own on their first forward pass."""
        state = super().__getstate__()
        state.pop("_packed", None)
        return state

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight
        if not (PACKING and x.device.type == "cpu" and x.dtype == weight.dtype and weight.device.type == "cpu"
                and x.dtype in PACKED_DTYPES and not torch.is_grad_enabled()
                and not torch.is_autocast_enabled("cpu") and self.padding_mode == "zeros"
                and isinstance(self.padding, tuple)) or (
                self._packed is None and x.shape[-2] * x.shape[-1] > PACK_AREA):
            return super().forward(x)
        packed = self._packed
        if (packed is None or packed[0].data_ptr() != weight.data_ptr() or packed[1] != weight._version
                or packed[0].dtype != weight.dtype):
            reordered = torch.ops.mkldnn._reorder_convolution_weight(
                weight, list(self.padding), list(self.stride), list(self.dilation), self.groups, list(x.shape))
            packed = self._packed = (weight.detach(), weight._version, reordered)
        return torch.ops.mkldnn._convolution_pointwise(
            x, packed[2], self.bias, list(self.padding), list(self.stride), list(self.dilation), self.groups,
            "none", [], "")
