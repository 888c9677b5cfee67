"""Seamless tiling: with circular padding the starter's UNet and VAE decoder commute with a wrap-around shift,
so the picture has no edge: what leaves on the right comes back on the left."""
import torch

from engine import Device, GenerationRequest, load_pipeline
from engine.infotext import parse_infotext
from engine.tiling import seamless
from tests.browser import MODELS


def test_the_models_wrap_around_and_the_picture_tiles():
    pipe = load_pipeline(MODELS / "Stable-diffusion" / "starter", Device.cpu_fp32())
    x = torch.randn(1, pipe.unet.config.in_channels, 16, 16, generator=torch.Generator().manual_seed(0))
    context = pipe.prompts.encode("a red circle")[0]
    shift = 4                                          # a whole cell of the UNet's coarsest level
    with torch.no_grad(), seamless([pipe.unet, pipe.vae]):
        out = pipe.unet(x, torch.tensor([500.0]), context)
        rolled = pipe.unet(torch.roll(x, shift, dims=-1), torch.tensor([500.0]), context)
        torch.testing.assert_close(torch.roll(out, shift, dims=-1), rolled, atol=1e-4, rtol=1e-4)
    with torch.no_grad():                              # the same shift without tiling: the edges differ
        out = pipe.unet(x, torch.tensor([500.0]), context)
        rolled = pipe.unet(torch.roll(x, shift, dims=-1), torch.tensor([500.0]), context)
        assert (torch.roll(out, shift, dims=-1) - rolled).abs().max() > 1e-2
    assert all(m.padding_mode == "zeros" for m in pipe.unet.modules() if isinstance(m, torch.nn.Conv2d))
    z = torch.randn(1, pipe.vae.config.latent_channels, 16, 16, generator=torch.Generator().manual_seed(1))
    f = pipe.vae.config.downscale
    with torch.no_grad(), seamless([pipe.vae]):              # the decoded picture wraps around too
        torch.testing.assert_close(torch.roll(pipe.vae.decode(z), 3 * f, dims=-1),
                                   pipe.vae.decode(torch.roll(z, 3, dims=-1)), atol=1e-4, rtol=1e-4)
    run = pipe.generate(GenerationRequest(prompt="a ring", width=64, height=64, steps=2, seed=1, tiling=True))
    assert parse_infotext(run.infotexts[0])["Tiling"] == "True"
