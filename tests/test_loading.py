"""Checkpoints saved in the formats users have load into the engine and give the reference outputs."""
import os
import pickle

import diffusers
import pytest
import torch
from diffusers.loaders import single_file_utils as diffusers_single_file
from safetensors.torch import save_file

from engine import (CorruptCheckpointError, Device, MissingKeysError, UnsafePickleError, UnsupportedArchitectureError,
                    WrongFileTypeError, load_pipeline)
from engine.loading import load_vae
from tests.reference import TINY_UNET, TINY_VAE, ldm_state_dict, reference_models, save_diffusers_folder

CPU32 = Device.cpu_fp32()


@pytest.fixture(scope="module")
def refs():
    return reference_models()


@torch.no_grad()
def reference_outputs(unet, vae, clip):
    torch.manual_seed(123)
    sample, context = torch.randn(2, unet.config.in_channels, 16, 16), torch.randn(2, 77, unet.config.cross_attention_dim)
    ids = torch.randint(0, 49406, (1, 77))
    image, latents = torch.rand(1, 3, 32, 32) * 2 - 1, torch.randn(1, 4, 8, 8)
    inputs = dict(sample=sample, context=context, ids=ids, image=image, latents=latents)
    expected = dict(unet=unet(sample, 321, context).sample, text=clip(ids).last_hidden_state,
                    latent_mean=vae.encode(image).latent_dist.mean, decoded=vae.decode(latents).sample)
    return inputs, expected


@torch.no_grad()
def assert_pipeline_matches(pipe, refs, atol=1e-5):
    inputs, expected = reference_outputs(*refs)
    got = dict(unet=pipe.unet(inputs["sample"], 321, inputs["context"]),
               text=pipe.text_encoder(inputs["ids"]).last_hidden_state,
               latent_mean=pipe.vae.encode(inputs["image"]).mean, decoded=pipe.vae.decode(inputs["latents"]))
    for name, value in expected.items():
        torch.testing.assert_close(got[name], value, atol=atol, rtol=atol, msg=f"{name} differs")


def test_ldm_writer_agrees_with_diffusers_converter(refs):
    """The engine's LDM key table, checked against diffusers' own LDM -> diffusers conversion."""
    unet, vae, clip = refs
    ldm = ldm_state_dict(unet, vae, clip)
    converted = diffusers_single_file.convert_ldm_unet_checkpoint(ldm, dict(unet.config))
    assert set(converted) == set(unet.state_dict())
    for key, value in unet.state_dict().items():
        assert torch.equal(converted[key], value), key
    converted = diffusers_single_file.convert_ldm_vae_checkpoint(ldm, dict(vae.config))
    assert set(converted) == set(vae.state_dict())
    for key, value in vae.state_dict().items():
        assert torch.equal(converted[key].reshape(value.shape), value), key
    converted = diffusers_single_file.convert_ldm_clip_checkpoint(ldm)
    clip_sd = clip.state_dict()
    assert {k.removeprefix("text_model.") for k in converted} == set(clip_sd)


def test_open_clip_writer_agrees_with_diffusers_converter(refs):
    unet, vae, clip = refs
    ldm = ldm_state_dict(unet, vae, clip, open_clip=True)
    converted = diffusers_single_file.convert_open_clip_checkpoint(clip, ldm)
    for key, value in clip.state_dict().items():
        assert torch.equal(converted["text_model." + key if "text_model." + key in converted else key], value), key


def test_diffusers_folder_round_trip(refs, tmp_path):
    folder = save_diffusers_folder(tmp_path / "model", *refs)
    pipe = load_pipeline(folder, CPU32)
    assert pipe.prediction_type == "epsilon" and pipe.tokenizer.pad_id == 49407
    assert pipe.vae.scaling_factor == 0.18215 and not pipe.schedule.zero_terminal_snr
    assert_pipeline_matches(pipe, refs)
    config = folder / "scheduler" / "scheduler_config.json"
    config.write_text(config.read_text().replace('"epsilon"', '"v_prediction", "rescale_betas_zero_snr": true'))
    pipe = load_pipeline(folder, CPU32)
    assert pipe.prediction_type == "v_prediction" and pipe.schedule.zero_terminal_snr


def test_single_file_safetensors_round_trip_ignores_ema_and_extras(refs, tmp_path):
    ldm = ldm_state_dict(*refs)
    ldm["model_ema.decay"] = torch.tensor(0.9999)
    ldm["model_ema.diffusion_modelconv_inweight"] = torch.zeros(3)
    ldm["cond_stage_model.transformer.text_model.embeddings.position_ids"] = torch.arange(77)[None]
    save_file(ldm, tmp_path / "model.safetensors")
    pipe = load_pipeline(tmp_path / "model.safetensors", CPU32)
    config = pipe.unet.config
    assert config.block_out_channels == (32, 64) and config.layers_per_block == 2
    assert config.down_block_types == TINY_UNET["down_block_types"]
    assert config.up_block_types == TINY_UNET["up_block_types"]
    assert config.heads_per_block() == (8, 8) and config.cross_attention_dim == 64
    assert pipe.name == "model"
    assert_pipeline_matches(pipe, refs)


def test_ckpt_round_trip_through_weights_only_pickle(refs, tmp_path):
    torch.save({"state_dict": ldm_state_dict(*refs), "global_step": 1000, "epoch": 3}, tmp_path / "model.ckpt")
    assert_pipeline_matches(load_pipeline(tmp_path / "model.ckpt", CPU32), refs)


def test_fp16_file_loads_into_fp32(refs, tmp_path):
    half = {k: v.half() for k, v in ldm_state_dict(*refs).items()}
    save_file(half, tmp_path / "model-fp16.safetensors")
    pipe = load_pipeline(tmp_path / "model-fp16.safetensors", CPU32)
    assert pipe.unet.dtype == torch.float32
    assert_pipeline_matches(pipe, refs, atol=3e-2)


def test_convolutions_run_channels_last_where_it_costs_no_second_copy(refs, tmp_path):
    """A cast copies the weights anyway, and a .safetensors tensor is read fresh, so those kernels are laid out
    channels-last; the tensors a pickle holds all at once keep their layout (no second copy). Either way the
    outputs are the reference modules' outputs."""
    rounded = [type(m).from_config(m.config) for m in refs[:2]] + [type(refs[2])(refs[2].config)]
    for model, original in zip(rounded, refs):
        model.load_state_dict({k: v.half().float() for k, v in original.state_dict().items()})
        model.eval()
    save_file({k: v.half() for k, v in ldm_state_dict(*rounded).items()}, tmp_path / "half.safetensors")
    save_file(ldm_state_dict(*rounded), tmp_path / "full.safetensors")
    torch.save({"state_dict": ldm_state_dict(*rounded)}, tmp_path / "full.ckpt")
    for name, channels_last in (("half.safetensors", True), ("full.safetensors", True), ("full.ckpt", False)):
        pipe = load_pipeline(tmp_path / name, CPU32)
        kernels = [p for module in (pipe.unet, pipe.vae) for p in module.parameters() if p.dim() == 4 and p.shape[-1] > 1]
        assert all(k.is_contiguous(memory_format=torch.channels_last) == channels_last for k in kernels), name
        assert_pipeline_matches(pipe, rounded)


def test_slimmed_three_level_unet_is_detected_from_shapes(tmp_path):
    unet_config = dict(block_out_channels=(32, 64, 96), layers_per_block=1,
                       down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                       up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                       attention_head_dim=8, cross_attention_dim=64)
    refs = reference_models(unet=unet_config, seed=3)
    save_file(ldm_state_dict(*refs), tmp_path / "slim.safetensors")
    (tmp_path / "slim.yaml").write_text("model:\n  params:\n    unet_config:\n      params:\n        num_heads: 8\n")
    pipe = load_pipeline(tmp_path / "slim.safetensors", CPU32)
    assert pipe.unet.config.block_out_channels == (32, 64, 96)
    assert pipe.unet.config.down_block_types == unet_config["down_block_types"]
    assert pipe.unet.config.up_block_types == unet_config["up_block_types"]
    assert_pipeline_matches(pipe, refs)


def test_sd2_single_file_with_open_clip_and_v_prediction_yaml(tmp_path):
    unet_config = dict(TINY_UNET, use_linear_projection=True, attention_head_dim=[1, 2])
    refs = reference_models(unet=unet_config, seed=4)
    unet, vae, clip = refs
    torch.manual_seed(5)
    extra_layer = {k: torch.randn_like(v) for k, v in clip.state_dict().items() if ".layers.0." in k}
    save_file(ldm_state_dict(*refs, open_clip=True, extra_clip_layer=extra_layer), tmp_path / "v2.safetensors")
    (tmp_path / "v2.yaml").write_text(
        "model:\n  params:\n    parameterization: \"v\"\n    scale_factor: 0.18215\n"
        "    unet_config:\n      params:\n        num_head_channels: 32\n        use_linear_in_transformer: true\n")
    pipe = load_pipeline(tmp_path / "v2.safetensors", CPU32)
    assert pipe.prediction_type == "v_prediction"
    assert pipe.tokenizer.pad_id == 0
    assert pipe.unet.config.use_linear_projection and pipe.unet.config.heads_per_block() == (1, 2)
    assert pipe.text_encoder.config.num_hidden_layers == clip.config.num_hidden_layers   # the last layer dropped
    assert pipe.text_encoder.config.hidden_act == "gelu"
    # the reference CLIP is quick_gelu; compare against a gelu twin holding the same weights
    import transformers
    gelu_clip = transformers.CLIPTextModel(transformers.CLIPTextConfig(**{**clip.config.to_dict(), "hidden_act": "gelu"}))
    gelu_clip.load_state_dict(clip.state_dict())
    assert_pipeline_matches(pipe, (unet, vae, gelu_clip.eval()))


def test_prediction_type_flag_overrides(refs, tmp_path):
    save_file(ldm_state_dict(*refs), tmp_path / "m.safetensors")
    assert load_pipeline(tmp_path / "m.safetensors", CPU32, prediction_type="v_prediction").prediction_type == "v_prediction"


def test_separate_vae_file_overrides_the_checkpoint_vae(refs, tmp_path):
    save_file(ldm_state_dict(*refs), tmp_path / "m.safetensors")
    torch.manual_seed(9)
    other = diffusers.AutoencoderKL(**TINY_VAE).eval()
    unet, _, clip = refs
    vae_only = {k.removeprefix("first_stage_model."): v for k, v in ldm_state_dict(unet, other, clip).items()
                if k.startswith("first_stage_model.")}
    save_file(vae_only, tmp_path / "other-vae.safetensors")
    pipe = load_pipeline(tmp_path / "m.safetensors", CPU32, vae=tmp_path / "other-vae.safetensors")
    assert_pipeline_matches(pipe, (unet, other, clip))
    other.save_pretrained(tmp_path / "vae-folder")
    folder_vae = load_vae(tmp_path / "vae-folder", 0.18215)
    latents = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(folder_vae.decode(latents), other.decode(latents).sample)


class RunsACommand:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_ckpt_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    payload = RunsACommand()
    payload.marker = marker
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "payload": payload}, path)
    with pytest.raises(UnsafePickleError, match="evil.ckpt"):
        load_pipeline(path, CPU32)
    assert not marker.exists()
    legacy = tmp_path / "evil-legacy.pt"
    legacy.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(UnsafePickleError):
        load_pipeline(legacy, CPU32)
    assert not marker.exists()


def test_allow_unsafe_pickle_is_an_explicit_switch(tmp_path):
    """Only with --allow-unsafe-pickle (allow_unsafe_pickle(True)) does such a file load - and its code runs."""
    from engine.loading.tensor_files import allow_unsafe_pickle, load_pickle_state_dict
    marker = tmp_path / "ran"
    payload = RunsACommand()
    payload.marker = marker
    path = tmp_path / "trusted.ckpt"
    torch.save({"state_dict": {"x": torch.ones(2)}, "payload": payload}, path)
    try:
        allow_unsafe_pickle(True)
        assert torch.equal(load_pickle_state_dict(path)["x"], torch.ones(2)) and marker.exists()
    finally:
        allow_unsafe_pickle(False)
    marker.unlink()
    with pytest.raises(UnsafePickleError):
        load_pickle_state_dict(path)
    assert not marker.exists()


def test_damaged_and_foreign_files_give_clear_errors(refs, tmp_path):
    ldm = ldm_state_dict(*refs)
    good = tmp_path / "good.safetensors"
    save_file(ldm, good)

    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CorruptCheckpointError, match="truncated"):
        load_pipeline(truncated, CPU32)

    torch.save({"state_dict": ldm}, tmp_path / "full.ckpt")
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes((tmp_path / "full.ckpt").read_bytes()[:50_000])
    with pytest.raises(CorruptCheckpointError, match="cut.ckpt"):
        load_pipeline(cut, CPU32)

    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(CorruptCheckpointError, match="empty"):
        load_pipeline(empty, CPU32)

    html = tmp_path / "page.safetensors"
    html.write_text("<!DOCTYPE html><html><body>Sign in to download</body></html>")
    with pytest.raises(WrongFileTypeError, match="web page"):
        load_pipeline(html, CPU32)

    with pytest.raises(WrongFileTypeError, match="expected .safetensors"):
        (tmp_path / "notes.txt").write_text("hello")
        load_pipeline(tmp_path / "notes.txt", CPU32)

    missing = {k: v for k, v in ldm.items() if "output_blocks.2." not in k}
    save_file(missing, tmp_path / "missing.safetensors")
    with pytest.raises(MissingKeysError, match="up_blocks.0.resnets.2"):
        load_pipeline(tmp_path / "missing.safetensors", CPU32)


@pytest.mark.parametrize("marker, family", [
    ("model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight", "SD3"),
    ("double_blocks.0.img_attn.qkv.weight", "Flux"),
])
def test_other_families_are_named(tmp_path, marker, family):
    save_file({marker: torch.zeros(2, 2), "model.diffusion_model.input_blocks.0.0.weight": torch.zeros(2, 4, 3, 3)},
              tmp_path / "other.safetensors")
    with pytest.raises(UnsupportedArchitectureError, match=f"{family}.*not supported|{family} checkpoint"):
        load_pipeline(tmp_path / "other.safetensors", CPU32)


def test_sgm_embedders_without_an_sdxl_unet_are_named(tmp_path):
    save_file({"conditioner.embedders.1.model.ln_final.weight": torch.zeros(2),
               "model.diffusion_model.input_blocks.0.0.weight": torch.zeros(2, 4, 3, 3)}, tmp_path / "odd.safetensors")
    with pytest.raises(UnsupportedArchitectureError, match="no SDXL UNet"):
        load_pipeline(tmp_path / "odd.safetensors", CPU32)


def test_files_for_other_folders_say_where_they_belong(tmp_path):
    save_file({"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 32)},
              tmp_path / "style.safetensors")
    with pytest.raises(WrongFileTypeError, match="models/Lora"):
        load_pipeline(tmp_path / "style.safetensors", CPU32)


def test_other_families_diffusers_folders_are_named_and_incomplete_sdxl_ones_say_what_is_missing(tmp_path):
    (tmp_path / "sd3").mkdir()
    (tmp_path / "sd3" / "model_index.json").write_text('{"_class_name": "StableDiffusion3Pipeline"}')
    with pytest.raises(UnsupportedArchitectureError, match="SD3"):
        load_pipeline(tmp_path / "sd3", CPU32)
    (tmp_path / "xl").mkdir()
    (tmp_path / "xl" / "model_index.json").write_text('{"_class_name": "StableDiffusionXLPipeline"}')
    with pytest.raises(MissingKeysError, match="unet"):
        load_pipeline(tmp_path / "xl", CPU32)
