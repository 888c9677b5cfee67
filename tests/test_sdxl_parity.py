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


# the text towers: OpenAI CLIP ViT-L/14 (SD1.5's, tested in test_models_parity) and OpenCLIP ViT-bigG/14
BIGG_TEXT = dict(vocab_size=49408, hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
                 num_attention_heads=20, max_position_embeddings=77, hidden_act="gelu", projection_dim=1280)
SGM_BIGG_PREFIX = "conditioner.embedders.1.model."


def prompt_ids(batch=2, length=77):
    torch.manual_seed(4)
    ids = torch.randint(0, 49406, (batch, length))
    ids[:, 0], ids[0, 9:], ids[1, 30:] = 49406, 49407, 49407      # end-of-text at different places
    return ids


@pytest.mark.slow
@torch.no_grad()
def test_full_size_bigg_text_encoder_matches_transformers_with_projection():
    import transformers
    from engine.models import CLIPTextConfig, CLIPTextModel
    torch.manual_seed(0)
    ref = transformers.CLIPTextModelWithProjection(transformers.CLIPTextConfig(**BIGG_TEXT)).eval()
    ours = engine_twin(CLIPTextModel, CLIPTextConfig.from_dict(ref.config.to_dict(), with_projection=True), ref,
                       strip="text_model.")
    ids = prompt_ids()
    expected = ref(ids, output_hidden_states=True)
    got = ours(ids)
    assert relative_error(got.text_embeds, expected.text_embeds) <= TOLERANCE
    penultimate = expected.hidden_states[-2]                            # SDXL's context: no final layer norm
    assert relative_error(ours.encode(ids, clip_skip=2, final_norm=False), penultimate) <= TOLERANCE
    assert relative_error(got.last_hidden_state, expected.last_hidden_state) <= TOLERANCE


def test_a_projection_dim_alone_does_not_make_a_text_projection():
    """transformers writes projection_dim into every CLIPTextConfig; SD1.5's text encoder has none."""
    from engine.models import CLIPTextConfig
    assert CLIPTextConfig.from_dict({"hidden_size": 768, "projection_dim": 768}).projection_dim is None
    assert CLIPTextConfig.from_dict({"hidden_size": 1280, "projection_dim": 1280}, True).projection_dim == 1280


@torch.no_grad()
def test_openclip_bigg_layout_in_an_sgm_file_matches_open_clip(tmp_path):
    """The fused in_proj attention and the bare text_projection matrix of OpenCLIP's own TextTransformer,
    read from an SGM / A1111 single file's conditioner.embedders.1.model.* keys."""
    from open_clip.transformer import TextTransformer
    from safetensors.torch import save_file

    from engine.loading import detect
    from engine.loading.assembly import assemble
    from engine.loading.single_file import clip_fetch
    from engine.loading.tensor_files import open_tensors
    from engine.models import CLIPTextConfig, CLIPTextModel
    torch.manual_seed(0)
    ref = TextTransformer(context_length=77, vocab_size=49408, width=128, heads=2, layers=4, output_dim=96,
                          act_layer=torch.nn.GELU).eval()
    save_file({SGM_BIGG_PREFIX + k: v.contiguous() for k, v in ref.state_dict().items()}, tmp_path / "sgm.safetensors")
    source = open_tensors(tmp_path / "sgm.safetensors")
    config = detect.open_clip_config(source, SGM_BIGG_PREFIX, keep_last_layer=True)
    assert config["num_hidden_layers"] == 4 and config["projection_dim"] == 96
    ours = assemble(CLIPTextModel, CLIPTextConfig.from_dict(config, with_projection=True),
                    clip_fetch(source, SGM_BIGG_PREFIX, open_clip=True), "bigG", torch.float32, torch.device("cpu"))
    captured = {}
    ref.transformer.resblocks[-2].register_forward_hook(lambda m, i, out: captured.setdefault("penultimate", out))
    ids = prompt_ids()
    pooled = ref(ids)
    penultimate = captured["penultimate"]
    if penultimate.shape[0] != ids.shape[0]:        # sequence-first builds of open_clip
        penultimate = penultimate.transpose(0, 1)
    assert relative_error(ours(ids).text_embeds, pooled) <= TOLERANCE
    assert relative_error(ours.encode(ids, clip_skip=2, final_norm=False), penultimate) <= TOLERANCE
