"""LoRA: kohya / A1111 and diffusers / PEFT files merged into the engine's weights, against diffusers'
`load_lora_weights` + `fuse_lora` on the same random models; restore; the `<lora:name:w>` prompt syntax."""
import copy

import diffusers
import pytest
import torch
from safetensors.torch import save_file

from engine import Device, GenerationRequest
from engine.loading.lora import LoraError, parse_lora_tags
from engine.models import AutoencoderKL, CLIPTextConfig, CLIPTextModel, UNet2DConditionModel, UNetConfig, VAEConfig
from engine.pipeline import Pipeline
from engine.tokenizer import CLIPTokenizer
from tests.reference import TINY_CLIP, reference_models
from tests.test_pipeline_diffusers import hf_tokenizer

RANK = 4
UNET_TARGETS = {   # module path -> (out, in, kernel)
    "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q": "linear",
    "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k": "linear",
    "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_out.0": "linear",
    "down_blocks.0.attentions.0.transformer_blocks.0.ff.net.0.proj": "linear",
    "down_blocks.0.attentions.0.proj_in": "conv",
    "up_blocks.1.attentions.2.transformer_blocks.0.attn1.to_v": "linear",
    "down_blocks.0.resnets.0.conv1": "conv",      # LoCon: a 3x3 down, a 1x1 up
    "up_blocks.0.resnets.1.conv2": "conv",
}
TE_TARGETS = ["encoder.layers.0.self_attn.q_proj", "encoder.layers.1.self_attn.out_proj", "encoder.layers.2.mlp.fc1"]


@pytest.fixture(scope="module")
def models():
    ref_unet, ref_vae, ref_clip = reference_models()
    return ref_unet, ref_vae, ref_clip


def independent_pipeline(models) -> Pipeline:
    """Engine modules holding copies of the reference weights (patching one must not touch the other)."""
    ref_unet, ref_vae, ref_clip = models
    def twin(cls, config, ref):  # noqa: E306
        module = cls(config)
        module.load_state_dict(copy.deepcopy(ref.state_dict()), strict=True)
        return module.eval()
    pipe = Pipeline(twin(UNet2DConditionModel, UNetConfig.from_dict(dict(ref_unet.config)), ref_unet),
                    twin(AutoencoderKL, VAEConfig.from_dict(dict(ref_vae.config)), ref_vae),
                    twin(CLIPTextModel, CLIPTextConfig.from_dict(TINY_CLIP), ref_clip),
                    CLIPTokenizer(), "epsilon", Device.cpu_fp32(), "tiny.safetensors")
    pipe.model_hash = "0123456789"
    return pipe


def random_lora(unet, text_encoder, style: str, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    tensors = {}
    for component, model, targets in (("unet", unet, UNET_TARGETS), ("text_encoder", text_encoder, TE_TARGETS)):
        for path in targets:
            weight = model.get_submodule(path).weight
            out_ch, in_ch, *kernel = weight.shape
            down = torch.randn(RANK, in_ch, *kernel, generator=g) * 0.1
            up = torch.randn(out_ch, RANK, *([1] * len(kernel)), generator=g) * 0.1
            if style == "kohya":
                prefix = "lora_unet_" if component == "unet" else "lora_te_text_model_"
                base = prefix + path.replace(".", "_")
                tensors |= {f"{base}.lora_down.weight": down, f"{base}.lora_up.weight": up,
                            f"{base}.alpha": torch.tensor(float(RANK) / 2)}
            else:
                base = f"unet.{path}" if component == "unet" else f"text_encoder.text_model.{path}"
                tensors |= {f"{base}.lora_A.weight": down, f"{base}.lora_B.weight": up}
    return tensors


def diffusers_fused(models, lora_file, scale: float):
    ref_unet, ref_vae, ref_clip = models
    pipe = diffusers.StableDiffusionPipeline(
        vae=ref_vae, text_encoder=copy.deepcopy(ref_clip), tokenizer=hf_tokenizer(), unet=copy.deepcopy(ref_unet),
        scheduler=diffusers.EulerDiscreteScheduler(), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)
    pipe.load_lora_weights(str(lora_file.parent), weight_name=lora_file.name, adapter_name="test")
    pipe.fuse_lora(lora_scale=scale)
    pipe.unload_lora_weights()
    return pipe.unet.state_dict(), {k.removeprefix("text_model."): v for k, v in pipe.text_encoder.state_dict().items()}


def max_difference(ours: dict, ref: dict) -> float:
    assert ours.keys() == ref.keys()
    return max((ours[k].float() - ref[k].float()).abs().max().item() for k in ours)


@pytest.mark.parametrize("style", ["kohya", "peft"])
def test_merged_weights_match_diffusers_load_lora_weights(models, tmp_path, style):
    pipe = independent_pipeline(models)
    original_unet = copy.deepcopy(pipe.unet.state_dict())
    lora_dir = tmp_path / "Lora"
    lora_dir.mkdir()
    save_file(random_lora(pipe.unet, pipe.text_encoder, style), lora_dir / "detail.safetensors")
    pipe.loras.folder = lora_dir
    result = pipe.generate(GenerationRequest(prompt="a cat <lora:detail:0.7>", steps=1, width=64, height=64, seed=1))
    ref_unet, ref_te = diffusers_fused(models, lora_dir / "detail.safetensors", 0.7)
    unet_error = max_difference(pipe.unet.state_dict(), ref_unet)
    te_error = max_difference(pipe.text_encoder.state_dict(), ref_te)
    print(f"{style}: merged weights vs diffusers, UNet {unet_error:.1e}, text encoder {te_error:.1e}")
    assert unet_error < 1e-6 and te_error < 1e-6
    changed = [k for k in original_unet if not torch.equal(original_unet[k], pipe.unet.state_dict()[k])]
    assert len(changed) == len(UNET_TARGETS)          # exactly the patched layers moved
    assert 'Lora hashes: "detail: ' in result.infotexts[0] and "<lora:detail:0.7>" in result.infotexts[0]
    # a prompt without the tag restores the exact original weights
    pipe.generate(GenerationRequest(prompt="a cat", steps=1, width=64, height=64, seed=1))
    assert all(torch.equal(v, pipe.unet.state_dict()[k]) for k, v in original_unet.items())


def test_lora_strengths_tags_and_errors(models, tmp_path):
    pipe = independent_pipeline(models)
    lora_dir = tmp_path / "Lora"
    (lora_dir / "styles").mkdir(parents=True)
    save_file(random_lora(pipe.unet, pipe.text_encoder, "kohya"), lora_dir / "styles" / "Ink.safetensors")
    pipe.loras.folder = lora_dir
    req = lambda prompt: GenerationRequest(prompt=prompt, steps=2, width=64, height=64, seed=3)  # noqa: E731
    plain = pipe.generate(req("a cat")).images[0]
    full = pipe.generate(req("a cat <lora:Ink>")).images[0]
    assert pipe.generate(req("a cat <lora:ink:1>")).images[0].tobytes() == full.tobytes()   # name: any case
    assert pipe.generate(req("a cat <lora:Ink:0>")).images[0].tobytes() == plain.tobytes()  # strength 0
    assert pipe.generate(req("a cat")).images[0].tobytes() == plain.tobytes()               # restored
    assert full.tobytes() != plain.tobytes()
    # text encoder and UNet strengths apart: UNet only differs from text encoder only
    unet_only = pipe.generate(req("a cat <lora:Ink:0:1>")).images[0]
    te_only = pipe.generate(req("a cat <lora:Ink:1:0>")).images[0]
    assert len({plain.tobytes(), unet_only.tobytes(), te_only.tobytes(), full.tobytes()}) == 4
    with pytest.raises(LoraError, match=r"'nothere' not found .*available: Ink"):
        pipe.generate(req("a cat <lora:nothere:1>"))
    with pytest.raises(LoraError, match="must be a number"):
        pipe.generate(req("a cat <lora:Ink:strong>"))
    assert pipe.generate(req("a cat")).images[0].tobytes() == plain.tobytes()   # nothing stuck after errors


def test_files_that_are_not_loras_say_so(models, tmp_path):
    pipe = independent_pipeline(models)
    lora_dir = tmp_path / "Lora"
    lora_dir.mkdir()
    save_file({"lora_unet_no_such_layer.lora_down.weight": torch.zeros(4, 8),
               "lora_unet_no_such_layer.lora_up.weight": torch.zeros(8, 4)}, lora_dir / "sdxl.safetensors")
    (lora_dir / "page.safetensors").write_text("<html>not found</html>")
    pipe.loras.folder = lora_dir
    with pytest.raises(LoraError, match="not a LoRA for this model"):
        pipe.generate(GenerationRequest(prompt="<lora:sdxl:1> a cat", steps=1, width=64, height=64))
    with pytest.raises(LoraError, match="page.safetensors"):
        pipe.generate(GenerationRequest(prompt="<lora:page:1> a cat", steps=1, width=64, height=64))


def test_parse_lora_tags():
    assert parse_lora_tags("a <lora:x:0.5> cat <lora:y> <lora:z:0.2:0.9>") == (
        "a  cat  ", [("x", 0.5, 0.5), ("y", 1.0, 1.0), ("z", 0.2, 0.9)])
