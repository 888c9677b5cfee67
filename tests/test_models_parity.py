"""The engine's forward passes against diffusers / transformers modules holding the same weights (fp32, CPU)."""
import diffusers
import pytest
import torch
import transformers

from engine.models import (AutoencoderKL, CLIPTextConfig, CLIPTextModel, UNet2DConditionModel, UNetConfig,
                           VAEConfig)
from tests.reference import SD15_CLIP, SD15_UNET, SD15_VAE, TINY_UNET

TOLERANCE = 1e-4   # max |engine - reference| relative to the reference output's max magnitude


def relative_error(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return ((ours - ref).abs().max() / ref.abs().max()).item()


def engine_twin(module_class, config, ref, strip: str = ""):
    """Engine module sharing the reference's tensors (strict; no renaming but the `strip` prefix, as
    transformers' CLIPTextModelWithProjection keeps its tower under text_model.)."""
    with torch.device("meta"):
        ours = module_class(config)
    ours.load_state_dict({k.removeprefix(strip): v for k, v in ref.state_dict().items()}, strict=True, assign=True)
    return ours.eval()


@pytest.fixture(scope="module")
def sd15_unet():
    torch.manual_seed(0)
    with torch.no_grad():
        ref = diffusers.UNet2DConditionModel(**SD15_UNET).eval()
    return ref, engine_twin(UNet2DConditionModel, UNetConfig.from_dict(dict(ref.config)), ref)


@torch.no_grad()
def test_sd15_unet_matches_diffusers(sd15_unet):
    ref, ours = sd15_unet
    assert sum(p.numel() for p in ours.parameters()) == pytest.approx(859.5e6, rel=1e-3)
    torch.manual_seed(1)
    sample, context = torch.randn(2, 4, 8, 8), torch.randn(2, 77, 768)
    timestep = torch.tensor([999.0, 1.0])
    expected = ref(sample, timestep, context).sample
    error = relative_error(ours(sample, timestep, context), expected)
    print(f"SD1.5 UNet max relative difference: {error:.2e}")
    assert error <= TOLERANCE


@torch.no_grad()
def test_sd15_unet_takes_controlnet_residuals(sd15_unet):
    ref, ours = sd15_unet
    torch.manual_seed(2)
    sample, context = torch.randn(1, 4, 8, 8), torch.randn(1, 77, 768)
    plain = ours(sample, 500, context)
    # residual shapes: one per skip connection, as a ControlNet produces them
    shapes = [(1, 320, 8, 8)] * 3 + [(1, 320, 4, 4)] + [(1, 640, 4, 4)] * 2 + [(1, 640, 2, 2)] + \
             [(1, 1280, 2, 2)] * 2 + [(1, 1280, 1, 1)] * 3
    down = [torch.randn(s) * 0.1 for s in shapes]
    mid = torch.randn(1, 1280, 1, 1) * 0.1
    expected = ref(sample, 500, context, down_block_additional_residuals=down,
                   mid_block_additional_residual=mid).sample
    got = ours(sample, 500, context, down_block_additional_residuals=down, mid_block_additional_residual=mid)
    assert relative_error(got, expected) <= TOLERANCE
    assert (got - plain).abs().max() > 1e-3   # the residuals did change the result


@torch.no_grad()
def test_sd15_vae_matches_diffusers():
    torch.manual_seed(0)
    ref = diffusers.AutoencoderKL(**SD15_VAE).eval()
    ours = engine_twin(AutoencoderKL, VAEConfig.from_dict(dict(ref.config)), ref)
    assert ours.scaling_factor == 0.18215
    images = torch.rand(1, 3, 64, 64) * 2 - 1
    posterior = ref.encode(images).latent_dist
    ours_posterior = ours.encode(images)
    assert relative_error(ours_posterior.mean, posterior.mean) <= TOLERANCE
    assert relative_error(ours_posterior.std, posterior.std) <= TOLERANCE
    latents = torch.randn(1, 4, 8, 8)
    error = relative_error(ours.decode(latents), ref.decode(latents).sample)
    print(f"SD1.5 VAE decode max relative difference: {error:.2e}")
    assert error <= TOLERANCE


@torch.no_grad()
def test_sd15_clip_text_encoder_matches_transformers():
    torch.manual_seed(0)
    ref = transformers.CLIPTextModel(transformers.CLIPTextConfig(**SD15_CLIP)).eval()
    ours = engine_twin(CLIPTextModel, CLIPTextConfig.from_dict(SD15_CLIP), ref)
    ids = torch.randint(0, 49406, (2, 77))
    ids[:, 0], ids[:, 20:] = 49406, 49407
    expected = ref(ids, output_hidden_states=True)
    got = ours(ids)
    assert relative_error(got.last_hidden_state, expected.last_hidden_state) <= TOLERANCE
    assert len(got.hidden_states) == 13
    for layer in (1, 6, 11, 12):
        assert relative_error(got.hidden_states[layer], expected.hidden_states[layer]) <= TOLERANCE
    # clip skip 2 = penultimate layer through the final layer norm (A1111's definition)
    skip2 = ref.final_layer_norm(expected.hidden_states[-2])
    assert relative_error(ours.encode(ids, clip_skip=2), skip2) <= TOLERANCE


TINY_VARIANTS = {
    "sd2_linear_projection_per_block_heads_upcast": dict(
        block_out_channels=(32, 64, 64), layers_per_block=1, attention_head_dim=[2, 4, 4],
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        use_linear_projection=True, upcast_attention=True, cross_attention_dim=48, norm_num_groups=8),
    "inpainting_9_channels": dict(TINY_UNET, in_channels=9),
    "lcm_time_cond_proj_dim": dict(TINY_UNET, time_cond_proj_dim=32),
}


@pytest.mark.parametrize("variant", TINY_VARIANTS)
@torch.no_grad()
def test_unet_variants_match_diffusers(variant):
    config = TINY_VARIANTS[variant]
    torch.manual_seed(0)
    ref = diffusers.UNet2DConditionModel(**config).eval()
    ours = engine_twin(UNet2DConditionModel, UNetConfig.from_dict(dict(ref.config)), ref)
    sample = torch.randn(2, config.get("in_channels", 4), 16, 24)   # a non-square latent
    context = torch.randn(2, 77, config["cross_attention_dim"])
    kwargs = {"timestep_cond": torch.randn(2, 32)} if "time_cond_proj_dim" in config else {}
    expected = ref(sample, torch.tensor([10.0, 700.0]), context, **kwargs).sample
    got = ours(sample, torch.tensor([10.0, 700.0]), context, **kwargs)
    assert got.shape == (2, 4, 16, 24)
    assert relative_error(got, expected) <= TOLERANCE
    if kwargs:   # the guidance embedding is really used
        assert (ours(sample, torch.tensor([10.0, 700.0]), context, timestep_cond=torch.zeros(2, 32)) - got).abs().max() > 1e-4


@torch.no_grad()
def test_sd2_style_text_encoder_uses_gelu():
    config = dict(vocab_size=49408, hidden_size=64, intermediate_size=256, num_hidden_layers=2,
                  num_attention_heads=2, hidden_act="gelu")
    torch.manual_seed(0)
    ref = transformers.CLIPTextModel(transformers.CLIPTextConfig(**config)).eval()
    ours = engine_twin(CLIPTextModel, CLIPTextConfig.from_dict(config), ref)
    ids = torch.randint(0, 49407, (1, 77))
    assert relative_error(ours(ids).last_hidden_state, ref(ids).last_hidden_state) <= TOLERANCE
