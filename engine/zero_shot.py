"""Zero-shot editing with a consistency model (Song et al. 2023, Algorithm 4): colorize, super-resolve, outpaint.

Each task is an invertible linear map A of the picture and a mask Omega over A's coordinates: the known part
(1 - Omega) comes from the reference y, the free part (Omega) from the model. Every estimate x of the clean
picture is put back on the constraint,

    x <- A^-1 [ (A y) (1 - Omega) + (A x) Omega ],

and the sampler re-noises it and goes on. The model works in latent space and the constraint lives in pixel
space, so the pipeline decodes each step's estimate, applies the projection and encodes it again; the final
picture is projected once more after decoding, so the known part is the reference's to the rounding of 8 bits.

- Colorize: A turns RGB into an orthonormal basis whose first axis is luminance (0.299, 0.587, 0.114), as
  the paper does; the luminance is known, the two colour axes are free.
- Super-resolve (factor k): A is the orthonormal patch transform whose first coordinate is each k x k
  patch's average; the averages are the small picture's pixels, everything finer is free.
- Outpaint: A is the identity; the reference's pixels are known, the new border around them is free.

The sampling starts from A^-1 [(A y) (1 - Omega)] (the free part zero, i.e. mid-grey) as an img2img start
at the request's denoising strength (1 for the paper's algorithm).
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image

from . import images

TASKS = ("Colorize", "Super-resolve", "Outpaint")
SCALES = (2, 4, 8)
MAX_EXTEND = 1024


def _colour_basis() -> torch.Tensor:
    """Rows: luminance direction (unit length), then two unit directions orthogonal to it and to each other."""
    luminance = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.stack([luminance, torch.tensor([1.0, 0, 0], dtype=torch.float64),
                                        torch.tensor([0, 1.0, 0], dtype=torch.float64)], dim=1))
    basis = q.T * torch.sign(q[:, 0] @ luminance)      # first row along +luminance
    return basis.float()


COLOUR_BASIS = _colour_basis()


@dataclass
class ZeroShotEdit:
    task: str                                   # one of TASKS
    picture: Image.Image                        # greyscale (or any) picture / the small picture / the picture to extend
    scale: int = 4                              # Super-resolve: output side = scale x the picture's
    extend: tuple[int, int, int, int] = (0, 0, 0, 0)   # Outpaint: pixels added left, top, right, bottom

    def validate(self, require, downscale: int = 8) -> None:
        require(self.task in TASKS, f"zero-shot task must be one of: {', '.join(TASKS)}, not {self.task!r}")
        if self.task == "Super-resolve":
            require(self.scale in SCALES, f"super-resolve scale must be one of {SCALES}, not {self.scale}")
        if self.task == "Outpaint":
            require(len(self.extend) == 4 and all(0 <= int(e) <= MAX_EXTEND for e in self.extend),
                    f"outpaint takes four borders (left, top, right, bottom) of 0 to {MAX_EXTEND} pixels")
            require(any(self.extend), "outpaint: give at least one border to extend the picture by")
        w, h = self.canvas_size()
        require(w % downscale == 0 and h % downscale == 0,
                f"{self.task.lower()} would make a {w}x{h} picture; its sides must be multiples of {downscale} "
                "(resize or crop the picture first)")

    def canvas_size(self) -> tuple[int, int]:
        """(width, height) of the picture made: colorize keeps the size, super-resolve multiplies it, outpaint
        adds the borders."""
        w, h = self.picture.size
        if self.task == "Super-resolve":
            return w * self.scale, h * self.scale
        if self.task == "Outpaint":
            left, top, right, bottom = (int(e) for e in self.extend)
            return w + left + right, h + top + bottom
        return w, h

    def infotext(self) -> dict:
        fields = {"Zero-shot": self.task}
        if self.task == "Super-resolve":
            fields["Zero-shot scale"] = self.scale
        if self.task == "Outpaint":
            fields["Zero-shot extend"] = " ".join(str(int(e)) for e in self.extend)
        return fields

    def projection(self) -> "Projection":
        return Projection(self)


class Projection:
    """The constraint of one edit, on (B, 3, H, W) pixel tensors in [-1, 1]."""

    def __init__(self, edit: ZeroShotEdit):
        self.task = edit.task
        self.scale = edit.scale
        picture = images.flatten(edit.picture)
        width, height = edit.canvas_size()
        if edit.task == "Outpaint":
            left, top, _, _ = (int(e) for e in edit.extend)
            y = torch.zeros(1, 3, height, width)
            y[..., top:top + picture.height, left:left + picture.width] = images.to_tensor(picture)
            self.free = torch.ones(1, 1, height, width)
            self.free[..., top:top + picture.height, left:left + picture.width] = 0
            self.known = y                                          # A y (1 - Omega), A the identity
        elif edit.task == "Colorize":
            self.known = self.luminance(images.to_tensor(picture))   # (1, 1, H, W)
        else:                                                       # the patch averages
            self.known = images.to_tensor(picture)                  # (1, 3, H/k, W/k)

    @staticmethod
    def luminance(x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("c,bchw->bhw", COLOUR_BASIS[0].to(x), x)[:, None]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x with its known part replaced by the reference's."""
        known = self.known.to(x)
        if self.task == "Colorize":       # along the luminance axis: the reference's value instead of x's
            return x + (known - self.luminance(x)) * COLOUR_BASIS[0].to(x)[None, :, None, None]
        if self.task == "Super-resolve":  # each patch's average: the small picture's pixel
            k = self.scale
            return x + F.interpolate(known - F.avg_pool2d(x, k), scale_factor=k, mode="nearest")
        free = self.free.to(x)
        return known * (1 - free) + x * free

    def final(self, x: torch.Tensor, rounds: int = 20) -> torch.Tensor:
        """The decoded picture on the constraint and inside [-1, 1]: alternating projections onto the two (both
        convex), so a colour pushed out of range by the known part is brought back with the least change."""
        for _ in range(rounds):
            x = self(x.clamp(-1, 1))
        return x.clamp(-1, 1)

    def start(self) -> torch.Tensor:
        """A^-1 [(A y) (1 - Omega)]: the reference's known part, the free part zero (mid-grey), (1, 3, H, W)."""
        return self(torch.zeros(1, 3, *self.size))

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the canvas."""
        h, w = self.known.shape[-2:]
        return (h * self.scale, w * self.scale) if self.task == "Super-resolve" else (h, w)

    def start_image(self) -> Image.Image:
        return images.to_pil(self.start())[0]
