"""Zero-shot editing (Song et al. 2023, Algorithm 4): the projections keep the known part and nothing else; an
oracle model's answer fills exactly the free part; the starter LCM colorizes, super-resolves and outpaints
held-out scenes."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from engine import GenerationRequest, InvalidRequestError, ZeroShotEdit, images
from engine.zero_shot import COLOUR_BASIS
from training.common import STARTER_DIR

LCM = dict(sampler="LCM", cfg_scale=1.5, denoising_strength=1.0)


def random_picture(width: int, height: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def chroma(x: torch.Tensor) -> torch.Tensor:
    return torch.einsum("kc,bchw->bkhw", COLOUR_BASIS[1:], x)


def test_colorize_keeps_the_references_luminance_and_only_that():
    grey = random_picture(24, 16).convert("L").convert("RGB")
    project = ZeroShotEdit("Colorize", grey).projection()
    x = torch.rand(2, 3, 16, 24) * 2 - 1
    y = project(x)
    reference = torch.from_numpy(np.asarray(grey, np.float32)[..., 0] / 127.5 - 1)
    weights = torch.tensor([0.299, 0.587, 0.114])
    assert torch.allclose(torch.einsum("c,bchw->bhw", weights, y), reference.expand(2, -1, -1), atol=1e-5)
    assert torch.allclose(chroma(y), chroma(x), atol=1e-5)          # the colour axes are the model's
    assert torch.allclose(project(y), y, atol=1e-6)                  # a projection


def test_super_resolve_keeps_the_patch_averages_and_the_detail():
    small = random_picture(8, 6)
    project = ZeroShotEdit("Super-resolve", small, scale=4).projection()
    assert project.size == (24, 32)
    x = torch.rand(1, 3, 24, 32) * 2 - 1
    y = project(x)
    reference = torch.from_numpy(np.asarray(small, np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
    assert torch.allclose(F.avg_pool2d(y, 4), reference, atol=1e-5)
    detail = lambda t: t - F.interpolate(F.avg_pool2d(t, 4), scale_factor=4)   # noqa: E731
    assert torch.allclose(detail(y), detail(x), atol=1e-5)


def test_outpaint_keeps_the_picture_and_frees_the_border():
    picture = random_picture(16, 8)
    edit = ZeroShotEdit("Outpaint", picture, extend=(8, 0, 16, 24))
    assert edit.canvas_size() == (40, 32)
    project = edit.projection()
    x = torch.rand(1, 3, 32, 40) * 2 - 1
    y = project(x)
    inside = torch.from_numpy(np.asarray(picture, np.float32) / 127.5 - 1).permute(2, 0, 1)
    assert torch.allclose(y[0, :, 0:8, 8:24], inside)
    outside = torch.ones(32, 40, dtype=torch.bool)
    outside[0:8, 8:24] = False
    assert torch.equal(y[0][:, outside], x[0][:, outside])


@pytest.mark.parametrize("edit, message", [
    (ZeroShotEdit("Sharpen", random_picture(64, 64)), "zero-shot task must be one of: Colorize"),
    (ZeroShotEdit("Super-resolve", random_picture(16, 16), scale=3), "scale must be one of"),
    (ZeroShotEdit("Outpaint", random_picture(64, 64)), "at least one border"),
    (ZeroShotEdit("Colorize", random_picture(60, 64)), "multiples of 8"),
])
def test_bad_edits_are_refused_before_any_step(edit, message):
    with pytest.raises(InvalidRequestError, match=message):
        GenerationRequest(zero_shot=edit).validate()


@pytest.fixture(scope="module")
def lcm_pipe():
    from engine import Device, load_pipeline
    return load_pipeline(STARTER_DIR.parent / "starter-lcm", Device.cpu_fp32())


def scene_picture(seed: int):
    from training.scenes import render, scene_for
    scene, text = scene_for(seed, max_shapes=1)
    return scene, text, render(scene)


def test_an_oracle_models_answer_fills_the_free_part(lcm_pipe, monkeypatch):
    """A denoiser that always answers the true colour picture, given a darker greyscale reference: the picture
    made has the reference's brightness and the oracle's colours, i.e. the oracle's answer projected."""
    from engine import pipeline as pipeline_module
    _, text, truth = scene_picture(910_000)
    answer = lcm_pipe.encode_images(torch.from_numpy(np.asarray(truth, np.float32) / 127.5 - 1).permute(2, 0, 1)[None])
    monkeypatch.setattr(pipeline_module.Denoiser, "__call__", lambda self, x, *a, **k: answer.expand_as(x).to(x))
    darker = Image.fromarray((np.asarray(truth.convert("L"), np.float32) * 0.7).round().astype(np.uint8)).convert("RGB")
    edit = ZeroShotEdit("Colorize", darker)
    out = lcm_pipe.generate(GenerationRequest(prompt=text, steps=2, seed=1, zero_shot=edit, **LCM)).images[0]
    oracle = lcm_pipe.decode_latents(answer)
    expected = np.asarray(images.to_pil(edit.projection().final(oracle))[0], np.float32)
    made = np.asarray(out, np.float32)
    assert np.abs(made - expected).mean() < 4        # the oracle's answer, projected (to a VAE round trip)
    assert np.abs(np.asarray(out.convert("L"), np.float32) - np.asarray(darker.convert("L"), np.float32)).mean() < 0.5
    assert np.abs(made - np.asarray(images.to_pil(oracle)[0], np.float32)).mean() > 15   # not the oracle's own
    assert "Zero-shot: Colorize" in out.info["parameters"]


def test_the_starter_lcm_colorizes_what_the_prompt_names(lcm_pipe):
    from training.evaluate import analyse
    right = 0
    for seed in range(900_000, 900_006):
        scene, text, truth = scene_picture(seed)
        grey = truth.convert("L").convert("RGB")
        out = lcm_pipe.generate(GenerationRequest(prompt=text, steps=2, seed=seed,
                                                  zero_shot=ZeroShotEdit("Colorize", grey), **LCM)).images[0]
        kept = np.abs(np.asarray(out.convert("L"), np.float32) - np.asarray(grey.convert("L"), np.float32))
        assert kept.max() <= 4 and kept.mean() < 0.5                   # the greyscale picture's brightness, kept
        found = analyse(out) or {}
        right += found.get("color") == scene.shapes[0].color and found.get("background") == scene.background
    grey_right = sum(analyse(scene_picture(s)[2].convert("L").convert("RGB")).get("background")
                     == scene_picture(s)[0].background for s in range(900_000, 900_006))
    assert right >= 5 and grey_right <= 2


def psnr(a, b) -> float:
    error = np.mean((np.asarray(a, np.float32) - np.asarray(b, np.float32)) ** 2)
    return float(10 * np.log10(255 ** 2 / error))


def test_the_starter_lcm_super_resolves_sharper_than_bicubic(lcm_pipe):
    ours, bicubic = [], []
    for seed in range(900_000, 900_004):
        _, text, truth = scene_picture(seed)
        small = truth.resize((16, 16), Image.BOX)
        out = lcm_pipe.generate(GenerationRequest(prompt=text, steps=1, seed=seed,
                                                  zero_shot=ZeroShotEdit("Super-resolve", small, scale=4),
                                                  **LCM)).images[0]
        assert out.size == (64, 64)
        averages = np.asarray(out.resize((16, 16), Image.BOX), np.float32)
        assert np.abs(averages - np.asarray(small, np.float32)).max() <= 1.5   # the small picture, kept
        ours.append(psnr(out, truth))
        bicubic.append(psnr(small.resize((64, 64), Image.BICUBIC), truth))
    assert np.mean(ours) > np.mean(bicubic) + 3


def test_the_starter_lcm_outpaints_around_the_kept_picture(lcm_pipe):
    _, text, truth = scene_picture(900_001)
    middle = truth.crop((16, 0, 48, 64))
    out = lcm_pipe.generate(GenerationRequest(prompt=text, steps=2, seed=3,
                                              zero_shot=ZeroShotEdit("Outpaint", middle, extend=(16, 0, 16, 0)),
                                              **LCM)).images[0]
    assert out.size == (64, 64)
    assert np.abs(np.asarray(out.crop((16, 0, 48, 64)), np.float32) - np.asarray(middle, np.float32)).max() <= 1
    border = np.concatenate([np.asarray(out)[:, :8].reshape(-1, 3), np.asarray(out)[:, -8:].reshape(-1, 3)])
    background = np.asarray(truth)[0, 32].astype(np.float32)           # the scene's background continues
    assert np.median(np.linalg.norm(border.astype(np.float32) - background, axis=1)) < 40
