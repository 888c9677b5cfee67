"""SDXL LoRA: kohya files in both naming styles (diffusers' `down_blocks_*` and SGM's `input_blocks_*`, with
`lora_te1_` / `lora_te2_`) and PEFT files, merged into a slim SDXL's weights, against diffusers'
`StableDiffusionXLPipeline.load_lora_weights` + `fuse_lora` on the same random weights; and the family check."""
import copy

import diffusers
import pytest
import torch
from safetensors.torch import save_file

from engine import Device, GenerationRequest
from engine.loading.ldm_names import unet_key
from engine.loading.lora import LoraError
from engine.models import AutoencoderKL, CLIPTextConfig, CLIPTextModel, UNet2DConditionModel, UNetConfig, VAEConfig
from engine.pipeline import Pipeline
from engine.prompts import TextTower
from engine.tokenizer import CLIPTokenizer
from tests.test_lora import RANK, independent_pipeline, max_difference, random_lora
from tests.test_lora import models as sd15_models  # noqa: F401  (fixture)
from tests.test_models_parity import engine_twin
from tests.test_sdxl_pipeline import BIGG, CLIP_L, SDXL_VAE, SLIM_UNET, hf_tokenizer

UNET_TARGETS = [   # diffusers paths in the slim SDXL UNet (levels: plain, 2 transformers, 3 transformers)
    "down_blocks.1.attentions.0.transformer_blocks.1.attn1.to_q",
    "down_blocks.2.attentions.1.transformer_blocks.2.attn2.to_k",
    "down_blocks.2.attentions.0.proj_in",
    "mid_block.attentions.0.transformer_blocks.0.ff.net.0.proj",
    "up_blocks.0.attentions.2.transformer_blocks.0.attn2.to_out.0",
    "up_blocks.1.attentions.1.proj_out",
    "down_blocks.0.resnets.1.conv1",        # LoCon: a 3x3 down, a 1x1 up
    "up_blocks.2.resnets.0.conv_shortcut",
    "mid_block.resnets.1.time_emb_proj",
]
# q/k/v projections are left out here: diffusers' kohya conversion for SDXL leaves te1's `q_proj` unapplied (it
# renames it to a legacy `to_q_lora`); the engine's q_proj patching is checked on SD1.x in test_lora.py
TE1_TARGETS = ["encoder.layers.0.self_attn.out_proj", "encoder.layers.2.mlp.fc1"]
TE2_TARGETS = ["encoder.layers.1.self_attn.out_proj", "encoder.layers.2.mlp.fc2"]


@pytest.fixture(scope="module")
def models():
    import transformers
    torch.manual_seed(0)
    with torch.no_grad():
        return dict(unet=diffusers.UNet2DConditionModel(**SLIM_UNET).eval(),
                    vae=diffusers.AutoencoderKL(**SDXL_VAE).eval(),
                    clip_l=transformers.CLIPTextModel(transformers.CLIPTextConfig(**CLIP_L)).eval(),
                    bigg=transformers.CLIPTextModelWithProjection(transformers.CLIPTextConfig(**BIGG)).eval())


def engine_sdxl(models) -> Pipeline:
    """An engine SDXL holding copies of the reference weights."""
    def text(ref, config, projection):
        return engine_twin(CLIPTextModel, CLIPTextConfig.from_dict(config, with_projection=projection),
                           copy.deepcopy(ref), strip="text_model.")
    unet = engine_twin(UNet2DConditionModel, UNetConfig.from_dict(dict(models["unet"].config)),
                       copy.deepcopy(models["unet"]))
    vae = engine_twin(AutoencoderKL, VAEConfig.from_dict(dict(models["vae"].config)), models["vae"])
    pipe = Pipeline(unet, vae, text(models["clip_l"], CLIP_L, False), CLIPTokenizer(), "epsilon", Device.cpu_fp32(),
                    "sdxl.safetensors", second_text=TextTower(text(models["bigg"], BIGG, True), CLIPTokenizer(0)))
    pipe.model_hash = "0123456789"
    return pipe


def sdxl_lora(pipe: Pipeline, style: str) -> dict:
    g = torch.Generator().manual_seed(5)
    config = pipe.unet.config
    up_attention = {i for i, kind in enumerate(config.up_block_types) if kind.startswith("CrossAttn")}
    towers = [t.encoder for t in pipe.prompts.towers]
    tensors = {}
    for component, model, targets in (("unet", pipe.unet, UNET_TARGETS), ("te1", towers[0], TE1_TARGETS),
                                      ("te2", towers[1], TE2_TARGETS)):
        for path in targets:
            out_ch, in_ch, *kernel = model.get_submodule(path).weight.shape
            down = torch.randn(RANK, in_ch, *kernel, generator=g) * 0.1
            up = torch.randn(out_ch, RANK, *([1] * len(kernel)), generator=g) * 0.1
            if style == "peft":
                name = {"unet": "unet.", "te1": "text_encoder.text_model.", "te2": "text_encoder_2.text_model."}
                tensors |= {f"{name[component]}{path}.lora_A.weight": down, f"{name[component]}{path}.lora_B.weight": up}
                continue
            if component == "unet" and style == "kohya sgm":
                path = unet_key(path + ".weight", config.layers_per_block, up_attention).removesuffix(".weight")
            prefix = "lora_unet_" if component == "unet" else f"lora_{component}_text_model_"
            base = prefix + path.replace(".", "_")
            tensors |= {f"{base}.lora_down.weight": down, f"{base}.lora_up.weight": up,
                        f"{base}.alpha": torch.tensor(float(RANK) / 2)}
    return tensors


def diffusers_fused(models, lora_file, scale):
    pipe = diffusers.StableDiffusionXLPipeline(
        vae=models["vae"], text_encoder=copy.deepcopy(models["clip_l"]), text_encoder_2=copy.deepcopy(models["bigg"]),
        tokenizer=hf_tokenizer(), tokenizer_2=hf_tokenizer(pad_token="!"), unet=copy.deepcopy(models["unet"]),
        scheduler=diffusers.EulerDiscreteScheduler(), add_watermarker=False)
    pipe.load_lora_weights(str(lora_file.parent), weight_name=lora_file.name, adapter_name="test")
    pipe.fuse_lora(lora_scale=scale)
    pipe.unload_lora_weights()
    strip = lambda sd: {k.removeprefix("text_model."): v for k, v in sd.items()}  # noqa: E731
    return pipe.unet.state_dict(), strip(pipe.text_encoder.state_dict()), strip(pipe.text_encoder_2.state_dict())


@pytest.mark.parametrize("style", ["kohya diffusers names", "kohya sgm", "peft"])
def test_sdxl_lora_merges_as_diffusers_load_lora_weights(models, tmp_path, style):
    pipe = engine_sdxl(models)
    original = copy.deepcopy(pipe.unet.state_dict())
    lora_dir = tmp_path / "Lora"
    lora_dir.mkdir()
    tensors = sdxl_lora(pipe, style)
    if style == "kohya sgm":
        assert any(k.startswith("lora_unet_input_blocks_4_1_transformer_blocks_1") for k in tensors)
        assert any(k.startswith("lora_unet_middle_block_2_emb_layers_1") for k in tensors)
    save_file(tensors, lora_dir / "style.safetensors")
    pipe.loras.folder = lora_dir
    result = pipe.generate(GenerationRequest(prompt="a cat <lora:style:0.6>", steps=1, width=64, height=64, seed=1))
    ref_unet, ref_te1, ref_te2 = diffusers_fused(models, lora_dir / "style.safetensors", 0.6)
    towers = [t.encoder for t in pipe.prompts.towers]
    errors = [max_difference(pipe.unet.state_dict(), ref_unet), max_difference(towers[0].state_dict(), ref_te1),
              max_difference(towers[1].state_dict(), ref_te2)]
    print(f"{style}: merged weights vs diffusers (UNet, CLIP-L, bigG): " + ", ".join(f"{e:.1e}" for e in errors))
    assert max(errors) < 1e-6
    changed = [k for k in original if not torch.equal(original[k], pipe.unet.state_dict()[k])]
    assert len(changed) == len(UNET_TARGETS)
    assert 'Lora hashes: "style: ' in result.infotexts[0]
    pipe.generate(GenerationRequest(prompt="a cat", steps=1, width=64, height=64, seed=1))
    assert all(torch.equal(v, pipe.unet.state_dict()[k]) for k, v in original.items())


def test_a_lora_of_the_other_family_is_refused_before_any_step(models, sd15_models, tmp_path):  # noqa: F811
    sdxl, sd15 = engine_sdxl(models), independent_pipeline(sd15_models)
    lora_dir = tmp_path / "Lora"
    lora_dir.mkdir()
    save_file(sdxl_lora(sdxl, "kohya sgm"), lora_dir / "xl.safetensors")
    save_file(random_lora(sd15.unet, sd15.text_encoder, "kohya"), lora_dir / "sd15.safetensors")
    steps = []
    for pipe, name, message in ((sd15, "xl", "made for SDXL models; the loaded model is an SD1.x / SD2.x one"),
                                (sdxl, "sd15", "made for SD1.x / SD2.x models; the loaded model is an SDXL one")):
        pipe.loras.folder = lora_dir
        with pytest.raises(LoraError, match=message):
            pipe.generate(GenerationRequest(prompt=f"a cat <lora:{name}:1>", steps=1, width=64, height=64),
                          progress=lambda *a: steps.append(a))
    assert steps == []
