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
    # relative to each residual's size: these random weights grow the deepest residuals to about 250
    worst = max(((a - b).abs().max() / b.abs().max()).item() for a, b in zip([*down, mid], [*expected[0], expected[1]]))
    print(f"SD1.5 ControlNet (pooled={pooled}) vs diffusers: max relative difference {worst:.2e}")
    assert worst < 1e-5


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


def original_state_dict(ref, prefix="control_model."):
    """An original-format file's tensors for a diffusers ControlNet, by the engine's own name map."""
    from engine.loading.controlnet import controlnet_key
    hint_convs = 2 * (len(ref.config.conditioning_embedding_out_channels) - 1) + 2
    return {prefix + controlnet_key(k, ref.config.layers_per_block, hint_convs): v.clone()
            for k, v in ref.state_dict().items()}


def test_the_name_map_agrees_with_diffusers_own_converter():
    from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint
    ref = reference_controlnet(**TINY_UNET_CONTROLNET)
    converted = convert_controlnet_checkpoint(original_state_dict(ref), dict(ref.config))
    expected = ref.state_dict()
    assert set(converted) == set(expected)
    assert all(torch.equal(converted[k], expected[k]) for k in expected)


TINY_UNET_CONTROLNET = dict(block_out_channels=(32, 64), layers_per_block=2, norm_num_groups=32,
                            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), attention_head_dim=8,
                            cross_attention_dim=64)   # the standard (16, 32, 96, 256) hint convolutions


@pytest.mark.parametrize("suffix,prefix", [(".pth", "control_model."), (".safetensors", ""),
                                           (".safetensors", "control_model.")])
def test_original_format_files_round_trip(tmp_path, suffix, prefix):
    from safetensors.torch import save_file
    from engine.loading.controlnet import load_controlnet
    ref = reference_controlnet(**TINY_UNET_CONTROLNET)
    state = original_state_dict(ref, prefix)
    path = tmp_path / f"control_v11p_sd15_canny{suffix}"
    if suffix == ".pth":
        state["model.diffusion_model.input_blocks.0.0.weight"] = torch.zeros(1)   # v1.0 files carry SD too
        torch.save(state, path)
    else:
        save_file(state, path)
    ours = load_controlnet(path)
    assert not ours.config.global_pool_conditions
    g = torch.Generator().manual_seed(3)
    sample, context = torch.randn(1, 4, 8, 8, generator=g), torch.randn(1, 3, 64, generator=g)
    image = torch.rand(1, 3, 64, 64, generator=g)
    with torch.no_grad():
        d_ref, m_ref = ref(sample, 5, context, image, return_dict=False)
        down, mid = ours(sample, 5, context, image)
    assert max((a - b).abs().max().item() for a, b in zip([*down, mid], [*d_ref, m_ref])) < 1e-5


def test_shuffle_pools_by_name_or_yaml_and_folders_load(tmp_path):
    from safetensors.torch import save_file
    from engine.loading.controlnet import load_controlnet
    ref = reference_controlnet(**TINY_UNET_CONTROLNET)
    save_file(original_state_dict(ref), tmp_path / "control_v11e_sd15_shuffle.safetensors")
    assert load_controlnet(tmp_path / "control_v11e_sd15_shuffle.safetensors").config.global_pool_conditions
    save_file(original_state_dict(ref), tmp_path / "mystery.safetensors")
    (tmp_path / "mystery.yaml").write_text(
        "model:\n  params:\n    control_stage_config:\n      params:\n        global_average_pooling: True\n")
    assert load_controlnet(tmp_path / "mystery.safetensors").config.global_pool_conditions
    ref.save_pretrained(tmp_path / "folder", variant="fp16")
    folder = load_controlnet(tmp_path / "folder")
    assert torch.equal(folder.controlnet_mid_block.weight, ref.controlnet_mid_block.weight)


def test_files_that_are_not_controlnets_say_so(tmp_path):
    from safetensors.torch import save_file
    from engine import WrongFileTypeError
    from engine.loading.controlnet import load_controlnet
    save_file({"lora_unet_x.lora_up.weight": torch.zeros(2, 2)}, tmp_path / "lora.safetensors")
    with pytest.raises(WrongFileTypeError, match="not a ControlNet"):
        load_controlnet(tmp_path / "lora.safetensors")
    (tmp_path / "page.pth").write_text("<html>")
    with pytest.raises(Exception, match="page.pth"):
        load_controlnet(tmp_path / "page.pth")
