"""Pipeline behaviour on a tiny model: seeds, variation seeds, CFG, interrupt, progress, inpainting, errors."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine import Device, GenerationRequest, InvalidRequestError
from engine.infotext import parse_infotext
from engine.models import AutoencoderKL, CLIPTextConfig, CLIPTextModel, UNet2DConditionModel, UNetConfig, VAEConfig
from engine.pipeline import Pipeline
from engine.preview import Previewer, VAEApprox, linear_preview
from engine.tokenizer import CLIPTokenizer
from tests.reference import TINY_CLIP, reference_models
from tests.test_models_parity import engine_twin

SHARED_WEIGHTS = Path(__file__).resolve().parents[2] / "shared" / "weights"


@pytest.fixture(scope="module")
def pipe():
    unet, vae, clip = reference_models()
    p = Pipeline(engine_twin(UNet2DConditionModel, UNetConfig.from_dict(dict(unet.config)), unet),
                 engine_twin(AutoencoderKL, VAEConfig.from_dict(dict(vae.config)), vae),
                 engine_twin(CLIPTextModel, CLIPTextConfig.from_dict(TINY_CLIP), clip),
                 CLIPTokenizer(), "epsilon", Device.cpu_fp32(), "tiny.safetensors")
    p.model_hash = "abcdef0123"
    return p


def request(**kw):
    base = dict(prompt="a red circle", negative_prompt="blue", steps=4, width=64, height=64, seed=100)
    return GenerationRequest(**{**base, **kw})


def arrays(result):
    return [np.asarray(im, dtype=np.int16) for im in result.images]


@pytest.mark.parametrize("sampler", ["Euler", "Euler a", "DPM++ SDE", "DPM++ 2M SDE"])
def test_image_i_of_a_batch_is_the_image_of_seed_plus_i(pipe, sampler):
    batch = pipe.generate(request(sampler=sampler, batch_size=3))
    assert batch.seeds == [100, 101, 102]
    single = pipe.generate(request(sampler=sampler, seed=101))
    assert np.abs(arrays(batch)[1] - arrays(single)[0]).max() <= 1
    assert np.abs(arrays(batch)[0] - arrays(batch)[1]).max() > 5


def test_batch_count_continues_the_seeds(pipe):
    result = pipe.generate(request(batch_size=2, batch_count=2))
    assert result.seeds == [100, 101, 102, 103] and len(result.images) == 4
    assert [parse_infotext(t)["Seed"] for t in result.infotexts] == ["100", "101", "102", "103"]


def test_random_seed_is_reported_and_reproduces(pipe):
    first = pipe.generate(request(seed=-1))
    again = pipe.generate(request(seed=first.seeds[0]))
    assert np.array_equal(arrays(first)[0], arrays(again)[0])


def test_variation_seed_interpolates_between_seeds(pipe):
    plain = arrays(pipe.generate(request(subseed=555, subseed_strength=0.0)))[0]
    assert np.array_equal(plain, arrays(pipe.generate(request()))[0])
    full = arrays(pipe.generate(request(subseed=555, subseed_strength=1.0)))[0]
    other = arrays(pipe.generate(request(seed=555)))[0]
    assert np.abs(full - other).max() <= 1          # strength 1 is the variation seed's own noise
    half = pipe.generate(request(subseed=555, subseed_strength=0.5))
    assert half.seeds == [100] and half.subseeds == [555]
    info = parse_infotext(half.infotexts[0])
    assert info["Variation seed"] == "555" and info["Variation seed strength"] == "0.5"


def test_cfg_1_skips_the_unconditional_pass(pipe):
    batches = []
    original = pipe.unet.forward

    class Counting(torch.nn.Module):
        def forward(self, sample, *args, **kwargs):
            batches.append(sample.shape[0])
            return original(sample, *args, **kwargs)
    counting = Counting()
    unet, pipe.unet = pipe.unet, counting
    counting.config, counting.dtype = unet.config, unet.dtype
    try:
        pipe.generate(request(sampler="Euler", cfg_scale=1.0))
        assert batches == [1] * 4
        batches.clear()
        pipe.generate(request(sampler="Euler", cfg_scale=7.0))
        assert batches == [2] * 4
    finally:
        pipe.unet = unet


def test_a_nan_result_is_a_clear_error_and_the_next_generation_works(pipe):
    from engine.errors import NumericalError

    class Overflowing(torch.nn.Module):
        def forward(self, sample, *args, **kwargs):
            return torch.full_like(sample, float("nan"))
    broken = Overflowing()
    unet, pipe.unet = pipe.unet, broken
    broken.config, broken.dtype = unet.config, unet.dtype
    try:
        with pytest.raises(NumericalError, match="NaN/infinity .* Try --precision fp32"):
            pipe.generate(request(sampler="Euler"))
    finally:
        pipe.unet = unet
    assert pipe.generate(request(sampler="Euler")).images[0].size == (64, 64)


def test_a_half_precision_vae_that_overflows_is_decoded_again_in_fp32(pipe):
    import copy
    vae = copy.deepcopy(pipe.vae)
    with torch.no_grad():
        vae.decoder.conv_in.weight.mul_(1e5)           # activations beyond fp16's 65504; GroupNorm undoes it in fp32
    latents = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = vae.decode(latents / vae.scaling_factor)
    half = copy.deepcopy(vae).half()
    assert not torch.isfinite(half.decode(latents.half() / half.scaling_factor)).all()
    own, pipe.vae = pipe.vae, half
    try:
        pixels = pipe.decode_latents(latents)
        assert pipe.vae.dtype == torch.float32 and torch.isfinite(pixels).all()
        torch.testing.assert_close(pixels, expected, atol=2e-3, rtol=0)    # fp16-rounded weights, fp32 maths
    finally:
        pipe.vae = own


def test_progress_reports_each_step_and_interrupt_stops_within_a_step(pipe):
    seen = []
    pipe.generate(request(steps=5, batch_count=2), progress=lambda i, total, latents: seen.append((i, total, latents.shape)))
    assert [s[:2] for s in seen] == [(i, 10) for i in range(1, 11)]
    assert seen[0][2] == (1, 4, 32, 32)
    calls = []
    result = pipe.generate(request(steps=10, batch_count=3), progress=lambda *a: calls.append(1),
                           should_stop=lambda: len(calls) >= 2)
    assert result.interrupted and len(calls) == 2 and len(result.images) == 1   # the last x_0 estimate, decoded


def test_skip_ends_only_the_current_batch(pipe):
    calls, skips = [], iter([False, False, True])      # skip once, at the third model evaluation
    result = pipe.generate(request(steps=6, batch_count=3, sampler="Euler"), progress=lambda *a: calls.append(1),
                           should_skip=lambda: next(skips, False))
    assert not result.interrupted and len(result.images) == 3
    assert len(calls) == 2 + 6 + 6                     # batch 1 stopped after two steps; batches 2 and 3 ran whole
    full = pipe.generate(request(steps=6, batch_count=3, sampler="Euler"))
    assert np.array_equal(np.asarray(result.images[1]), np.asarray(full.images[1]))


def checkerboard():
    array = np.indices((64, 64)).sum(axis=0) % 16 < 8
    return Image.fromarray((array[..., None] * np.array([220, 40, 60])).astype(np.uint8))


def half_mask():
    mask = np.zeros((64, 64), np.uint8)
    mask[:, 32:] = 255
    return Image.fromarray(mask)


@pytest.mark.parametrize("area", ["Whole picture", "Only masked"])
def test_inpainting_keeps_pixels_outside_the_mask(pipe, area):
    init, mask = checkerboard(), half_mask()
    result = pipe.generate(request(init_image=init, mask=mask, mask_blur=0, denoising_strength=1.0, inpaint_area=area,
                                   masked_padding=4))
    out, original = np.asarray(result.images[0], np.int16), np.asarray(init, np.int16)
    assert np.array_equal(out[:, :32], original[:, :32])       # untouched half is the original, exactly
    assert np.abs(out[:, 40:] - original[:, 40:]).mean() > 10  # the masked half was repainted
    info = parse_infotext(result.infotexts[0])
    assert info["Mask blur"] == "0" and info["Denoising strength"] == "1"
    assert (info.get("Inpaint area") == "Only masked") == (area == "Only masked")


@pytest.mark.parametrize("sampler", ["Consistency", "LCM"])
def test_zero_shot_consistency_inpainting_projects_every_step(pipe, sampler):
    """Song et al. 2023, Algorithm 4 with A = I: after every consistency-function call the known region is
    put back, so every step's x_0 estimate equals the original's latent there; the steps honour strength 1."""
    init, mask = checkerboard(), half_mask()
    seen = []
    result = pipe.generate(request(init_image=init, mask=mask, mask_blur=0, denoising_strength=1.0, sampler=sampler,
                                   steps=3, cfg_scale=1.5),
                           progress=lambda done, total, latents: seen.append((done, total, latents.clone())))
    assert [(d, t) for d, t, _ in seen] == [(1, 3), (2, 3), (3, 3)]
    known = pipe.encode_images(torch.from_numpy(np.asarray(init, np.float32) / 127.5 - 1).permute(2, 0, 1)[None])
    half = known.shape[-1] // 2
    for _, _, latents in seen:
        assert torch.equal(latents[..., :half - 1], known[..., :half - 1])         # the known (left) half
        assert (latents[..., half + 1:] - known[..., half + 1:]).abs().mean() > 0.1  # the generated half
    out = np.asarray(result.images[0], np.int16)
    assert np.array_equal(out[:, :32], np.asarray(init, np.int16)[:, :32])
    assert f"Sampler: {sampler}, Schedule type: LCM" in result.infotexts[0]


@pytest.mark.parametrize("content", ["fill", "original", "latent noise", "latent nothing"])
def test_every_masked_content_mode_runs(pipe, content):
    result = pipe.generate(request(init_image=checkerboard(), mask=half_mask(), masked_content=content))
    assert result.images[0].size == (64, 64)
    if content.startswith("latent"):
        assert parse_infotext(result.infotexts[0])["Masked content"] == content


def test_img2img_resizes_any_image_mode(pipe):
    rgba = Image.new("RGBA", (100, 50), (10, 200, 30, 128))
    for image in (rgba, rgba.convert("LA"), rgba.convert("P"), Image.new("I;16", (80, 80), 40000)):
        for mode in ("Just resize", "Crop and resize", "Resize and fill"):
            out = pipe.generate(request(init_image=image, resize_mode=mode, width=64, height=96, steps=2))
            assert out.images[0].size == (64, 96)


def test_infotext_in_png_chunk_and_format(pipe, tmp_path):
    result = pipe.generate(request(sampler="DPM++ 2M", cfg_scale=7.5, clip_skip=2))
    text = result.infotexts[0]
    assert text.startswith("a red circle\nNegative prompt: blue\nSteps: 4, Sampler: DPM++ 2M, Schedule type: Karras, "
                           "CFG scale: 7.5, Seed: 100, Size: 64x64, Model hash: abcdef0123, Model: tiny, Clip skip: 2")
    from PIL.PngImagePlugin import PngInfo
    info = PngInfo()
    info.add_text("parameters", result.images[0].info["parameters"])
    result.images[0].save(tmp_path / "out.png", pnginfo=info)
    assert Image.open(tmp_path / "out.png").text["parameters"] == text


@pytest.mark.parametrize("field, value, message", [
    ("steps", 0, "steps"), ("width", 65, "width"), ("height", 4096, "height"), ("sampler", "Euler z", "unknown sampler"),
    ("schedule", "Karas", "unknown schedule"), ("batch_size", 9, "batch size"), ("cfg_scale", -1, "CFG"),
    ("masked_content", "glue", "masked content"),
])
def test_bad_requests_say_what_is_wrong(pipe, field, value, message):
    with pytest.raises(InvalidRequestError, match=message):
        pipe.generate(request(**{field: value}))


def test_previews(pipe):
    latents = torch.randn(1, 4, 8, 8)
    assert linear_preview(latents).shape == (1, 3, 8, 8)
    assert Previewer("Approx NN", approx=None).method == "Approx cheap"   # no weights: the free preview
    full = Previewer("Full", vae=pipe.vae)(latents)
    assert full.shape == (1, 3, 16, 16) and 0 <= full.min() and full.max() <= 1


def test_cheap_preview_is_fitted_to_the_models_own_vae(pipe):
    """The fitted latent -> RGB map gives back a flat colour's RGB from its latents, better than SD1's table."""
    colour = torch.tensor([0.6, -0.4, 0.2])
    latents = pipe.encode_images(colour[None, :, None, None].expand(1, 3, 32, 32).contiguous())
    fitted = linear_preview(latents, pipe.latent_rgb)[0, :, 8, 8] * 2 - 1
    generic = linear_preview(latents)[0, :, 8, 8] * 2 - 1
    assert (fitted - colour).abs().max() < (generic - colour).abs().max()
    assert pipe.latent_rgb.shape == (5, 3)


@pytest.mark.skipif(not (SHARED_WEIGHTS / "vae_approx_sd1.pt").is_file(),
                    reason="the real VAE-approx weights are in ../shared/weights, which this checkout lacks")
def test_vae_approx_preview_with_real_weights():
    approx = VAEApprox.load(SHARED_WEIGHTS / "vae_approx_sd1.pt")
    torch.manual_seed(0)
    latents = torch.randn(1, 4, 16, 16)
    preview = Previewer("Approx NN", approx=approx)(latents)
    assert preview.shape == (1, 3, 32, 32)
    # a flat latent of SD1's "red" direction previews reddish under both approximations
    red = torch.zeros(1, 4, 16, 16)
    red[:, 0] = 1.5
    red[:, 3] = 0.5
    for image in (approx(red), linear_preview(red)):
        r, g, b = image[0].mean(dim=(1, 2)).tolist()
        assert r > b


def test_controlnet_with_inpainting_changes_only_the_masked_part(pipe):
    from engine.control import ControlUnit
    from engine.models.controlnet import ControlNetConfig, ControlNetModel
    torch.manual_seed(5)
    net = ControlNetModel(ControlNetConfig(pipe.unet.config, conditioning_embedding_out_channels=(16, 32))).eval()
    edges = Image.fromarray((np.indices((64, 64)).sum(axis=0) % 8 < 2).astype(np.uint8) * 255).convert("RGB")
    base = dict(init_image=checkerboard(), mask=half_mask(), mask_blur=0, denoising_strength=0.8, sampler="Euler")
    plain = arrays(pipe.generate(request(**base)))[0]
    controlled = pipe.generate(request(**base, control_units=[ControlUnit(net, edges, weight=1.5)]))
    ours = arrays(controlled)[0]
    assert np.array_equal(ours[:, :32], plain[:, :32])            # outside the mask: the original pixels
    assert np.abs(ours[:, 32:] - plain[:, 32:]).max() > 10        # inside: the control map had its say


def test_eta_noise_seed_delta_changes_only_the_ancestral_draws(pipe):
    plain = pipe.generate(request(sampler="Euler a"))
    shifted = pipe.generate(request(sampler="Euler a", eta_noise_seed_delta=31337))
    assert np.abs(arrays(plain)[0] - arrays(shifted)[0]).max() > 5
    assert "ENSD: 31337" in shifted.infotexts[0] and "ENSD" not in plain.infotexts[0]
    euler = [pipe.generate(request(sampler="Euler", eta_noise_seed_delta=d)) for d in (0, 31337)]
    assert np.array_equal(arrays(euler[0])[0], arrays(euler[1])[0])          # no ancestral noise: the same
    from engine.sampling import ImageNoise
    noise = ImageNoise((4, 8, 8), [5], seed_delta=7)
    first = noise.initial()
    assert torch.equal(first[0], torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(5))[0])
    assert torch.equal(noise()[0], torch.randn((4, 8, 8), generator=torch.Generator().manual_seed(12)))
