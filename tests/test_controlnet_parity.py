"""The engine's ControlNet against diffusers' ControlNetModel holding the same random weights."""
import diffusers
import pytest
import torch

from engine.models.controlnet import ControlNetConfig, ControlNetModel
from tests.reference import TINY_UNET
from tests.test_models_parity import engine_twin


def randomised(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every parameter random (the zero convolutions too, or the comparison would be of zeros)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return model.eval()


def reference_controlnet(seed=0, **config):
    torch.manual_seed(seed)
    return randomised(diffusers.ControlNetModel(**config), seed)


@pytest.mark.parametrize("pooled", [False, True])
def test_sd15_size_controlnet_matches_diffusers(pooled):
    ref = reference_controlnet(cross_attention_dim=768, global_pool_conditions=pooled)   # SD1.5 by default
    ours = engine_twin(ControlNetModel, ControlNetConfig.from_dict(dict(ref.config)), ref)
    g = torch.Generator().manual_seed(1)
    sample, context = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 5, 768, generator=g)
    image = torch.rand(2, 3, 64, 64, generator=g)
    with torch.no_grad():
        expected = ref(sample, 400, context, image, conditioning_scale=1.0, return_dict=False)
        down, mid = ours(sample, 400, context, image)
    assert len(down) == 12
    worst = max((a - b).abs().max().item() for a, b in zip([*down, mid], [*expected[0], expected[1]]))
    print(f"SD1.5 ControlNet (pooled={pooled}) vs diffusers: max abs difference {worst:.2e}")
    assert worst < 1e-4


def test_tiny_controlnet_residuals_feed_the_unet_as_diffusers_does():
    from engine.models import UNet2DConditionModel, UNetConfig
    torch.manual_seed(0)
    ref_unet = randomised(diffusers.UNet2DConditionModel(**TINY_UNET))
    ref_cn = randomised(diffusers.ControlNetModel.from_unet(ref_unet, conditioning_embedding_out_channels=(8, 16)))
    unet = engine_twin(UNet2DConditionModel, UNetConfig.from_dict(dict(ref_unet.config)), ref_unet)
    cn = engine_twin(ControlNetModel, ControlNetConfig.from_dict(dict(ref_cn.config)), ref_cn)
    g = torch.Generator().manual_seed(2)
    sample, context = torch.randn(1, 4, 16, 16, generator=g), torch.randn(1, 7, TINY_UNET["cross_attention_dim"], generator=g)
    image = torch.rand(1, 3, 32, 32, generator=g)
    with torch.no_grad():
        d_ref, m_ref = ref_cn(sample, 10, context, image, return_dict=False)
        expected = ref_unet(sample, 10, context, down_block_additional_residuals=d_ref,
                            mid_block_additional_residual=m_ref).sample
        down, mid = cn(sample, 10, context, image)
        got = unet(sample, 10, context, down_block_additional_residuals=down, mid_block_additional_residual=mid)
    assert (got - expected).abs().max().item() < 1e-4
