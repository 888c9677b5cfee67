"""SDXL's UNet and text encoders against diffusers / transformers / open_clip modules holding the same weights
(fp32, CPU): the full-size base UNet (2.6 B parameters), slimmed base and refiner configs with every feature
of the full ones, and the two text towers with the pooled projection."""
import diffusers
import pytest
import torch

from engine.models import UNet2DConditionModel, UNetConfig
from tests.test_models_parity import TOLERANCE, engine_twin, relative_error

# diffusers' configs of stabilityai/stable-diffusion-xl-base-1.0 and -refiner-1.0 (UNet)
SDXL_BASE_UNET = dict(
    sample_size=128, block_out_channels=(320, 640, 1280), layers_per_block=2, transformer_layers_per_block=(1, 2, 10),
    attention_head_dim=(5, 10, 20), cross_attention_dim=2048, use_linear_projection=True,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    addition_embed_type="text_time", addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816)
SDXL_REFINER_UNET = dict(
    sample_size=128, block_out_channels=(384, 768, 1536, 1536), layers_per_block=2, transformer_layers_per_block=4,
    attention_head_dim=(6, 12, 24, 24), cross_attention_dim=1280, use_linear_projection=True,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    addition_embed_type="text_time", addition_time_embed_dim=256, projection_class_embeddings_input_dim=2560)
# the same layouts, narrow: per-block depths, no attention at the first level, linear projections, text_time
SLIM_BASE_UNET = dict(SDXL_BASE_UNET, block_out_channels=(32, 64, 128), attention_head_dim=(1, 2, 4),
                      transformer_layers_per_block=(1, 2, 3), cross_attention_dim=96, addition_time_embed_dim=8,
                      projection_class_embeddings_input_dim=64 + 6 * 8, norm_num_groups=16, sample_size=16)
SLIM_REFINER_UNET = dict(SDXL_REFINER_UNET, block_out_channels=(32, 64, 96, 96), attention_head_dim=(1, 2, 3, 3),
                         transformer_layers_per_block=2, cross_attention_dim=64, addition_time_embed_dim=8,
                         projection_class_embeddings_input_dim=64 + 5 * 8, norm_num_groups=16, sample_size=16)


def micro_conditioning(batch: int, pooled: int, ids: int):
    torch.manual_seed(3)
    time_ids = torch.tensor([[1024.0, 1024.0, 0.0, 0.0, 1024.0, 1024.0][:ids], [768.0, 1344.0, 16.0, 8.0, 768.0,
                                                                               1344.0][:ids]][:batch])
    if ids == 5:    # the refiner: original size, crop, aesthetic score
        time_ids[:, 4] = torch.tensor([6.0, 2.5])[:batch]
    return {"text_embeds": torch.randn(batch, pooled), "time_ids": time_ids}


@pytest.mark.parametrize("config, ids", [(SLIM_BASE_UNET, 6), (SLIM_REFINER_UNET, 5)], ids=["base", "refiner"])
@torch.no_grad()
def test_slim_sdxl_unets_match_diffusers(config, ids):
    torch.manual_seed(0)
    ref = diffusers.UNet2DConditionModel(**config).eval()
    ours = engine_twin(UNet2DConditionModel, UNetConfig.from_dict(dict(ref.config)), ref)
    assert ours.config.is_sdxl
    pooled = config["projection_class_embeddings_input_dim"] - ids * config["addition_time_embed_dim"]
    added = micro_conditioning(2, pooled, ids)
    sample, context = torch.randn(2, 4, 16, 24), torch.randn(2, 77, config["cross_attention_dim"])
    timestep = torch.tensor([999.0, 20.0])
    expected = ref(sample, timestep, context, added_cond_kwargs=added).sample
    got = ours(sample, timestep, context, **added)
    assert relative_error(got, expected) <= TOLERANCE
    other = dict(added, time_ids=added["time_ids"] * 0.5)      # the micro-conditioning is really used
    assert (ours(sample, timestep, context, **other) - got).abs().max() > 1e-4
    with pytest.raises(ValueError, match="text_embeds"):
        ours(sample, timestep, context)


@pytest.mark.slow
@torch.no_grad()
def test_full_size_sdxl_base_unet_matches_diffusers():
    """2.6 B parameters, 10.3 GB in fp32: the engine's module takes the reference's tensors (one copy)."""
    torch.manual_seed(0)
    ref = diffusers.UNet2DConditionModel(**SDXL_BASE_UNET).eval()
    ours = engine_twin(UNet2DConditionModel, UNetConfig.from_dict(dict(ref.config)), ref)
    assert sum(p.numel() for p in ours.parameters()) == pytest.approx(2.567e9, rel=1e-3)
    sample, context = torch.randn(1, 4, 16, 16), torch.randn(1, 77, 2048)
    added = micro_conditioning(1, 1280, 6)
    expected = ref(sample, torch.tensor([500.0]), context, added_cond_kwargs=added).sample
    del ref
    error = relative_error(ours(sample, torch.tensor([500.0]), context, **added), expected)
    print(f"SDXL base UNet max relative difference: {error:.2e}")
    assert error <= TOLERANCE


@pytest.mark.parametrize("config", [SDXL_BASE_UNET, SDXL_REFINER_UNET], ids=["base", "refiner"])
def test_full_size_sdxl_unets_have_diffusers_parameters_exactly(config):
    """Every tensor name and shape of the full-size UNets (built without memory, on the meta device)."""
    with torch.device("meta"):
        ref = diffusers.UNet2DConditionModel(**config)
        ours = UNet2DConditionModel(UNetConfig.from_dict(dict(ref.config)))
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}
