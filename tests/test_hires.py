"""Hires. fix: A1111's target sizes, and the two passes as exactly a first pass, an upscale and img2img."""
import numpy as np
import pytest
import torch.nn.functional as F
from PIL import Image

from engine import InvalidRequestError
from engine.hires import HiresFix
from engine.infotext import parse_infotext
from engine.upscalers import LATENT_UPSCALE_MODES, UnknownUpscalerError, resize_with, upscale
from tests.test_pipeline import arrays, pipe, request  # noqa: F401  (pipe: a fixture)


@pytest.mark.parametrize("size,hires,upscale_to,final", [
    ((512, 512), HiresFix(scale=2), (1024, 1024, 0, 0), (1024, 1024)),
    ((512, 768), HiresFix(scale=1.5), (768, 1152, 0, 0), (768, 1152)),
    ((512, 512), HiresFix(scale=1.3), (665, 665, 0, 0), (664, 664)),              # int(), then the latent grid
    ((512, 768), HiresFix(resize_x=1024), (1024, 1536, 0, 0), (1024, 1536)),     # height follows the ratio
    ((768, 512), HiresFix(resize_y=1024), (1536, 1024, 0, 0), (1536, 1024)),
    ((512, 512), HiresFix(resize_x=1024, resize_y=768), (1024, 1024, 0, 32), (1024, 768)),   # cover, then cut
    ((768, 512), HiresFix(resize_x=1024, resize_y=768), (1152, 768, 16, 0), (1024, 768)),
])
def test_target_size_is_a1111s(size, hires, upscale_to, final):
    assert hires.upscale_to(*size) == upscale_to
    assert hires.final_size(*size) == final


def test_a_hires_run_is_a_first_pass_a_latent_upscale_and_img2img_with_each_seed(pipe):
    hires = HiresFix(upscaler="Latent (bicubic antialiased)", scale=1.5, steps=3, denoising_strength=0.6)
    seen = []
    run = pipe.generate(request(batch_size=2, hires=hires), progress=lambda done, total, _: seen.append((done, total)))
    assert [im.size for im in run.images] == [(96, 96)] * 2 and run.seeds == [100, 101]
    first = pipe.generate(request(batch_size=2))
    for i, seed in enumerate((100, 101)):
        side = 96 // pipe.vae.config.downscale
        z = F.interpolate(first.latents[i][None], size=(side, side), mode="bicubic", antialias=True)
        by_hand = pipe.generate(request(seed=seed, width=96, height=96, steps=3, init_latent=z, denoising_strength=0.6))
        assert np.array_equal(arrays(run)[i], arrays(by_hand)[0])
    # progress counts both passes: 4 first-pass steps per batch, then int(0.6 * 3) + 1 = 2 per picture
    assert seen[-1] == (4 + 2 * 2, 8) and [d for d, _ in seen] == list(range(1, 9))
    info = parse_infotext(run.infotexts[0])
    assert info["Size-1"] == "64" and info["Steps"] == "4"                       # the first pass's, as A1111
    assert (info["Denoising strength"], info["Hires upscale"], info["Hires steps"],
            info["Hires upscaler"]) == ("0.6", "1.5", "3", "Latent (bicubic antialiased)")
    assert run.images[0].info["parameters"] == run.infotexts[0]


def test_a_pixel_upscaler_decodes_upscales_and_encodes_and_a_resize_is_cut_evenly(pipe):
    hires = HiresFix(upscaler="Lanczos", resize_x=96, resize_y=64, denoising_strength=0.5, sampler="Euler",
                     prompt="a blue square")
    run = pipe.generate(request(hires=hires))
    assert run.images[0].size == (96, 64)
    first = pipe.generate(request())
    big = first.images[0].resize((96, 96), Image.LANCZOS).crop((0, 16, 96, 80))    # 4 latent rows cut: 2 + 2
    by_hand = pipe.generate(request(prompt="a blue square", sampler="Euler", width=96, height=64, init_image=big,
                                    denoising_strength=0.5))
    assert np.array_equal(arrays(run)[0], arrays(by_hand)[0])
    info = parse_infotext(run.infotexts[0])
    assert (info["Hires resize-1"], info["Hires resize-2"], info["Hires sampler"], info["Hires prompt"]) == (
        "96", "64", "Euler", "a blue square")                                    # A1111's parser splits sizes
    assert "Hires steps" not in info and "Hires upscale" not in info


def test_every_latent_mode_runs_and_the_modes_differ(pipe):
    pictures = {mode: arrays(pipe.generate(request(steps=2, hires=HiresFix(upscaler=mode, scale=1.5, steps=2))))[0]
                for mode in LATENT_UPSCALE_MODES}
    assert all(p.shape == (96, 96, 3) for p in pictures.values())
    assert not np.array_equal(pictures["Latent"], pictures["Latent (nearest)"])


def test_bad_hires_settings_are_refused_before_any_step(pipe):
    steps = []
    with pytest.raises(UnknownUpscalerError, match="Lanczos"):
        pipe.generate(request(hires=HiresFix(upscaler="4x-Nothing")), progress=lambda *a: steps.append(a))
    for hires, message in [(HiresFix(scale=9), "at most 8"), (HiresFix(scale=5), "would make 2560x2560"),
                           (HiresFix(denoising_strength=1.5), "denoising"), (HiresFix(sampler="Fast"), "hires sampler"),
                           (HiresFix(resize_x=10), "resize width")]:
        with pytest.raises(InvalidRequestError, match=message):
            pipe.generate(request(hires=hires, width=512, height=512), progress=lambda *a: steps.append(a))
    with pytest.raises(InvalidRequestError, match="txt2img"):
        pipe.generate(request(hires=HiresFix(), init_image=Image.new("RGB", (64, 64))))
    assert steps == []


def test_interrupted_in_the_first_pass_the_first_pictures_come_back(pipe):
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 2
    run = pipe.generate(request(hires=HiresFix()), should_stop=stop)
    assert run.interrupted and [im.size for im in run.images] == [(64, 64)]


def test_upscale_repeats_its_step_until_big_enough_then_lanczos_to_the_size():
    picture = Image.new("RGB", (20, 12), "red")
    steps = []

    def times_two(image, scale):
        steps.append(image.size)
        return image.resize((image.width * 2, image.height * 2))
    out = upscale(picture, 3.3, times_two)
    assert steps == [(20, 12), (40, 24)] and out.size == (64, 32)     # 66 x 39.6 rounded down to multiples of 8
    assert resize_with(picture, 50, 30, "None").size == (50, 30)
    with pytest.raises(UnknownUpscalerError):
        resize_with(picture, 50, 30, "ESRGAN_4x")


def test_controlnet_maps_are_fitted_to_the_second_pass(pipe, monkeypatch):
    import torch

    from engine import control
    from engine.control import ControlUnit
    from engine.models.controlnet import ControlNetConfig, ControlNetModel
    from tests.reference import TINY_UNET
    torch.manual_seed(0)
    net = ControlNetModel(ControlNetConfig.from_dict({**TINY_UNET, "conditioning_embedding_out_channels": [16, 32]}))
    sizes, original = [], control.control_hint
    monkeypatch.setattr(control, "control_hint", lambda image, w, h, mode: sizes.append((w, h)) or original(
        image, w, h, mode))
    unit = ControlUnit(net, Image.new("RGB", (64, 64), "white"))
    run = pipe.generate(request(control_units=[unit], hires=HiresFix(scale=1.5, steps=2)))
    assert run.images[0].size == (96, 96) and sizes == [(64, 64), (96, 96)]
