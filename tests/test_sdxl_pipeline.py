"""SDXL end to end (slimmed architecture, random weights): the engine against diffusers' StableDiffusionXLPipeline
with the same weights, seeds and sigmas, pictures compared after rounding to 8 bits; and SDXL folders loading."""
import copy

import diffusers
import pytest
import torch
import transformers
from safetensors.torch import save_file

from engine import Device, GenerationRequest, load_pipeline
from engine.models import AutoencoderKL, CLIPTextConfig, CLIPTextModel, UNet2DConditionModel, UNetConfig, VAEConfig
from engine.pipeline import Pipeline
from engine.prompts import TextTower
from engine.sampling import make_sigmas
from engine.tokenizer import CLIPTokenizer, vocabulary
from tests.test_models_parity import engine_twin
from tests.test_pipeline_diffusers import NEGATIVE, PROMPT, SD_SCHEDULER, assert_images_agree, generators
from tests.test_sdxl_parity import SLIM_BASE_UNET, SLIM_REFINER_UNET

SIZE, STEPS, SEED = 64, 5, 77
# narrow, with what SGM files leave unwritten as in the full models: 64 channels a head (towers and UNet),
# 32 GroupNorm groups and 256 Fourier features a micro-conditioning id
CLIP_L = dict(vocab_size=49408, hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=1,
              max_position_embeddings=77, hidden_act="quick_gelu")
BIGG = dict(vocab_size=49408, hidden_size=128, intermediate_size=256, num_hidden_layers=3, num_attention_heads=2,
            max_position_embeddings=77, hidden_act="gelu", projection_dim=128)
SLIM_UNET = dict(SLIM_BASE_UNET, sample_size=16, cross_attention_dim=64 + 128, addition_time_embed_dim=256,
                 projection_class_embeddings_input_dim=128 + 6 * 256, attention_head_dim=(1, 1, 2), norm_num_groups=32)
SLIM_REFINER = dict(SLIM_REFINER_UNET, sample_size=16, cross_attention_dim=128, addition_time_embed_dim=256,
                    projection_class_embeddings_input_dim=128 + 5 * 256, block_out_channels=(64, 128, 128, 128),
                    attention_head_dim=(1, 2, 2, 2), norm_num_groups=32)
SDXL_VAE = dict(block_out_channels=(32, 64, 64), layers_per_block=1, latent_channels=4, norm_num_groups=32,
                down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
                scaling_factor=0.13025, sample_size=64)


def slim_sdxl_file(path):
    """A slim SDXL base as an fp16 SGM single file, as A1111 users keep them (random weights, seed 0)."""
    from tests.reference import sgm_state_dict
    torch.manual_seed(0)
    with torch.no_grad():
        parts = (diffusers.UNet2DConditionModel(**SLIM_UNET), diffusers.AutoencoderKL(**SDXL_VAE),
                 transformers.CLIPTextModel(transformers.CLIPTextConfig(**CLIP_L)),
                 transformers.CLIPTextModelWithProjection(transformers.CLIPTextConfig(**BIGG)))
    save_file({k: v.half().contiguous() for k, v in sgm_state_dict(*parts).items()}, path)


def slim_refiner_file(path):
    """A slim SDXL refiner (bigG alone) as an fp16 SGM single file (random weights, seed 1)."""
    from tests.reference import sgm_state_dict
    torch.manual_seed(1)
    with torch.no_grad():
        unet, vae = diffusers.UNet2DConditionModel(**SLIM_REFINER), diffusers.AutoencoderKL(**SDXL_VAE)
        bigg = transformers.CLIPTextModelWithProjection(transformers.CLIPTextConfig(**BIGG))
    save_file({k: v.half().contiguous() for k, v in sgm_state_dict(unet, vae, None, bigg).items()}, path)


def hf_tokenizer(pad_token=None):
    vocab, merges = vocabulary()
    tokenizer = transformers.CLIPTokenizer(vocab=vocab, merges=merges, **({"pad_token": pad_token} if pad_token else {}))
    tokenizer.model_max_length = 77
    return tokenizer


def twin_text(ref, config, with_projection):
    return engine_twin(CLIPTextModel, CLIPTextConfig.from_dict(config, with_projection=with_projection), ref,
                       strip="text_model.")


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    with torch.no_grad():
        unet = diffusers.UNet2DConditionModel(**SLIM_UNET).eval()
        vae = diffusers.AutoencoderKL(**SDXL_VAE).eval()
        clip_l = transformers.CLIPTextModel(transformers.CLIPTextConfig(**CLIP_L)).eval()
        bigg = transformers.CLIPTextModelWithProjection(transformers.CLIPTextConfig(**BIGG)).eval()
    engine = Pipeline(engine_twin(UNet2DConditionModel, UNetConfig.from_dict(dict(unet.config)), unet),
                      engine_twin(AutoencoderKL, VAEConfig.from_dict(dict(vae.config)), vae),
                      twin_text(clip_l, CLIP_L, False), CLIPTokenizer(), "epsilon", Device.cpu_fp32(),
                      "sdxl-random.safetensors", second_text=TextTower(twin_text(bigg, BIGG, True), CLIPTokenizer(0)))
    engine.model_hash = "0123456789"
    return dict(unet=unet, vae=vae, clip_l=clip_l, bigg=bigg, engine=engine)


@pytest.fixture(scope="module")
def refiner(models):
    """The slim refiner UNet (diffusers) and an engine refiner holding its weights and the base's bigG and VAE."""
    torch.manual_seed(1)
    with torch.no_grad():
        unet = diffusers.UNet2DConditionModel(**SLIM_REFINER).eval()
    base = models["engine"]
    engine = Pipeline(engine_twin(UNet2DConditionModel, UNetConfig.from_dict(dict(unet.config)), unet), base.vae,
                      base.prompts.towers[1].encoder, CLIPTokenizer(0), "epsilon", Device.cpu_fp32(),
                      "refiner-random.safetensors")
    engine.model_hash = "abcdef0123"
    return dict(unet=unet, engine=engine)


def reference(models, scheduler):
    return diffusers.StableDiffusionXLPipeline(
        vae=models["vae"], text_encoder=models["clip_l"], text_encoder_2=models["bigg"], tokenizer=hf_tokenizer(),
        tokenizer_2=hf_tokenizer(pad_token="!"), unet=models["unet"], scheduler=scheduler, add_watermarker=False)


@pytest.mark.parametrize("sampler, schedule, scheduler, custom_sigmas", [
    ("Euler", "Automatic", lambda: diffusers.EulerDiscreteScheduler(**SD_SCHEDULER, timestep_spacing="linspace"),
     True),
    # diffusers' DPM-Solver++ takes no custom sigmas: it makes the Karras ones from the same training schedule
    ("DPM++ 2M", "Karras", lambda: diffusers.DPMSolverMultistepScheduler(
        **SD_SCHEDULER, algorithm_type="dpmsolver++", solver_order=2, use_karras_sigmas=True,
        final_sigmas_type="zero", lower_order_final=True), False)], ids=["Euler", "DPM++ 2M Karras"])
def test_sdxl_txt2img_matches_stable_diffusion_xl_pipeline(models, sampler, schedule, scheduler, custom_sigmas):
    engine = models["engine"]
    assert engine.family == "SDXL" and engine.native_size == 64
    req = GenerationRequest(prompt=PROMPT, negative_prompt=NEGATIVE, sampler=sampler, schedule=schedule,
                            steps=STEPS, cfg_scale=6, width=SIZE, height=SIZE, seed=SEED, batch_size=2)
    ours = engine.generate(req)
    sigmas = make_sigmas(sampler, schedule, STEPS, engine.schedule)
    timing = {"sigmas": sigmas.tolist()} if custom_sigmas else {"num_inference_steps": STEPS}
    ref = reference(models, scheduler())(
        PROMPT, negative_prompt=NEGATIVE, guidance_scale=6, height=SIZE, width=SIZE, num_images_per_prompt=2,
        generator=generators([SEED, SEED + 1]), output_type="np", **timing).images
    assert_images_agree(ours.images, ref)


def test_sdxl_micro_conditioning_follows_the_picture_size(models):
    """A1111 sends original = target = the picture's size: another size is another conditioning vector."""
    engine = models["engine"]
    request = dict(prompt=PROMPT, sampler="Euler", steps=2, cfg_scale=1, seed=SEED)
    square = engine.generate(GenerationRequest(**request, width=SIZE, height=SIZE)).images[0]
    reference_ids = reference(models, diffusers.EulerDiscreteScheduler(**SD_SCHEDULER))._get_add_time_ids(
        (72, 64), (0, 0), (72, 64), torch.float32, text_encoder_projection_dim=128)
    assert reference_ids.tolist() == [[72, 64, 0, 0, 72, 64]]
    tall = engine.generate(GenerationRequest(**request, width=SIZE, height=72)).images[0]
    assert tall.size == (64, 72) and square.size == (64, 64)


def test_an_sdxl_diffusers_folder_loads_and_makes_the_same_picture(models, tmp_path):
    reference(models, diffusers.EulerDiscreteScheduler(**SD_SCHEDULER)).save_pretrained(tmp_path / "sdxl")
    loaded = load_pipeline(tmp_path / "sdxl", Device.cpu_fp32())
    assert loaded.family == "SDXL" and loaded.vae.scaling_factor == 0.13025
    assert loaded.prompts.towers[1].tokenizer.pad_id == 0 and loaded.prompts.towers[1].encoder.config.projection_dim
    assert "SDXL" in loaded.summary()
    req = GenerationRequest(prompt=PROMPT, negative_prompt=NEGATIVE, sampler="Euler", steps=3, cfg_scale=5,
                            width=SIZE, height=SIZE, seed=SEED)
    assert list(loaded.generate(req).images[0].getdata()) == list(models["engine"].generate(req).images[0].getdata())


def reference_refiner(models, refiner, scheduler):
    return diffusers.StableDiffusionXLImg2ImgPipeline(
        vae=models["vae"], text_encoder=None, text_encoder_2=models["bigg"], tokenizer=None,
        tokenizer_2=hf_tokenizer(pad_token="!"), unet=refiner["unet"], scheduler=scheduler,
        requires_aesthetics_score=True, add_watermarker=False)


def test_an_sdxl_refiner_folder_loads_with_bigg_alone_and_the_aesthetic_score(models, refiner, tmp_path):
    reference_refiner(models, refiner, diffusers.EulerDiscreteScheduler(**SD_SCHEDULER)).save_pretrained(
        tmp_path / "refiner")
    loaded = load_pipeline(tmp_path / "refiner", Device.cpu_fp32())
    assert loaded.family == "SDXL refiner" and loaded.is_refiner and len(loaded.prompts.towers) == 1
    req = GenerationRequest(prompt=PROMPT, sampler="Euler", steps=2, width=SIZE, height=SIZE, seed=SEED)
    assert list(loaded.generate(req).images[0].getdata()) == list(refiner["engine"].generate(req).images[0].getdata())


def test_the_refiner_takes_over_mid_run_as_diffusers_base_then_refiner(models, refiner):
    """A1111's hand-over within one Euler run equals diffusers' base with denoising_end followed by the refiner
    with denoising_start at the same point (Euler keeps no history). Of 6 steps (timesteps 999, 799, 599, 400,
    200, 0), switching at 0.7 gives the last two to the refiner."""
    base = models["engine"]
    req = GenerationRequest(prompt=PROMPT, negative_prompt=NEGATIVE, sampler="Euler", steps=6, cfg_scale=6,
                            width=SIZE, height=SIZE, seed=SEED, refiner_switch_at=0.7)
    ours = base.generate(req, refiner=refiner["engine"])
    sigmas = make_sigmas("Euler", "Automatic", 6, base.schedule).tolist()
    scheduler = lambda: diffusers.EulerDiscreteScheduler(**SD_SCHEDULER, timestep_spacing="linspace")  # noqa: E731
    latents = reference(models, scheduler())(
        PROMPT, negative_prompt=NEGATIVE, guidance_scale=6, height=SIZE, width=SIZE, sigmas=sigmas,
        denoising_end=0.7, generator=generators([SEED]), output_type="latent").images
    ref = reference_refiner(models, refiner, scheduler())(
        PROMPT, negative_prompt=NEGATIVE, image=latents, guidance_scale=6, sigmas=sigmas, denoising_start=0.7,
        output_type="np").images
    assert_images_agree(ours.images, ref)
    assert "Refiner: refiner-random [abcdef0123], Refiner switch at: 0.7" in ours.infotexts[0]
    alone = base.generate(GenerationRequest(**{**req.__dict__, "refiner_switch_at": 1.0}), refiner=refiner["engine"])
    assert "Refiner" not in alone.infotexts[0]          # switching at 1 never hands over, as in A1111
    assert list(alone.images[0].getdata()) == list(base.generate(req).images[0].getdata())
    assert list(alone.images[0].getdata()) != list(ours.images[0].getdata())


def test_the_sgm_writer_agrees_with_diffusers_converter(models):
    """The tests' SGM layout, checked against diffusers' own SDXL single-file conversion."""
    from diffusers.loaders import single_file_utils as diffusers_single_file

    from tests.reference import sgm_state_dict
    sgm = sgm_state_dict(models["unet"], models["vae"], models["clip_l"], models["bigg"])
    converted = diffusers_single_file.convert_ldm_unet_checkpoint(sgm, dict(models["unet"].config))
    assert set(converted) == set(models["unet"].state_dict())
    for key, value in models["unet"].state_dict().items():
        assert torch.equal(converted[key], value), key
    bigg = diffusers_single_file.convert_open_clip_checkpoint(models["bigg"], sgm,
                                                              prefix="conditioner.embedders.1.model.")
    for key, value in models["bigg"].state_dict().items():
        assert torch.equal(bigg[key], value), key


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32 file", "fp16 file"])
def test_an_sgm_single_file_loads_and_matches_the_diffusers_folder(models, tmp_path, dtype):
    from tests.reference import sgm_state_dict
    sgm = sgm_state_dict(models["unet"], models["vae"], models["clip_l"], models["bigg"])
    save_file({k: v.to(dtype).contiguous() for k, v in sgm.items()}, tmp_path / "sdxl-model.safetensors")
    loaded = load_pipeline(tmp_path / "sdxl-model.safetensors", Device.cpu_fp32())
    assert loaded.family == "SDXL" and loaded.vae.scaling_factor == 0.13025
    assert loaded.native_size == 128 * 4        # SDXL's 128-latent native size, through this VAE's 4x
    assert loaded.unet.config.transformer_layers_per_block == (1, 2, 3)
    in_memory = models["engine"]
    if dtype == torch.float16:      # the same weights, rounded as the file holds them
        in_memory = load_pipeline(_folder_of(models, tmp_path, dtype), Device.cpu_fp32())
    req = GenerationRequest(prompt=PROMPT, negative_prompt=NEGATIVE, sampler="Euler", steps=3, cfg_scale=5,
                            width=SIZE, height=SIZE, seed=SEED)
    assert list(loaded.generate(req).images[0].getdata()) == list(in_memory.generate(req).images[0].getdata())


def _folder_of(models, tmp_path, dtype):
    """The module's models in a diffusers folder at `dtype`; a copy is rounded, the fixture's weights stay as they are."""
    copy.deepcopy(reference(models, diffusers.EulerDiscreteScheduler(**SD_SCHEDULER))).to(dtype).save_pretrained(
        tmp_path / "folder")
    return tmp_path / "folder"


def test_an_sgm_refiner_file_loads_with_bigg_alone(models, refiner, tmp_path):
    from tests.reference import sgm_state_dict
    save_file(sgm_state_dict(refiner["unet"], models["vae"], None, models["bigg"]), tmp_path / "refiner.safetensors")
    loaded = load_pipeline(tmp_path / "refiner.safetensors", Device.cpu_fp32())
    assert loaded.family == "SDXL refiner" and len(loaded.prompts.towers) == 1
    req = GenerationRequest(prompt=PROMPT, steps=2, width=SIZE, height=SIZE, seed=1)
    assert list(loaded.generate(req).images[0].getdata()) == list(refiner["engine"].generate(req).images[0].getdata())


@pytest.fixture(scope="module")
def sdxl_controlnet(models):
    """A slim SDXL ControlNet from the slim UNet, every weight random; its hint embedding downsamples 4x, as
    this slim VAE does."""
    from engine.models.controlnet import ControlNetConfig, ControlNetModel
    from tests.test_controlnet_parity import randomised
    ref = randomised(diffusers.ControlNetModel.from_unet(models["unet"], conditioning_embedding_out_channels=(16, 32, 64)),
                     seed=4)
    with torch.no_grad():
        for conv in [*ref.controlnet_down_blocks, ref.controlnet_mid_block]:
            conv.weight.mul_(4.0)      # residuals large enough to move the picture
    return ref, engine_twin(ControlNetModel, ControlNetConfig.from_dict(dict(ref.config)), ref)


def test_sdxl_controlnet_matches_stable_diffusion_xl_controlnet_pipeline(models, sdxl_controlnet):
    import numpy as np
    from PIL import Image

    from engine.control import ControlUnit
    ref_controlnet, ours = sdxl_controlnet
    assert ours.config.unet.is_sdxl and len(ref_controlnet.controlnet_down_blocks) == 9
    hint = Image.fromarray(np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8))
    req = GenerationRequest(prompt=PROMPT, negative_prompt=NEGATIVE, sampler="Euler", steps=STEPS, cfg_scale=6,
                            width=SIZE, height=SIZE, seed=SEED, control_units=[ControlUnit(ours, hint, weight=0.8)])
    engine = models["engine"]
    result = engine.generate(req)
    plain = engine.generate(GenerationRequest(**{**vars(req), "control_units": []}))
    sigmas = make_sigmas("Euler", "Automatic", STEPS, engine.schedule)
    pipe = diffusers.StableDiffusionXLControlNetPipeline(
        vae=models["vae"], text_encoder=models["clip_l"], text_encoder_2=models["bigg"], tokenizer=hf_tokenizer(),
        tokenizer_2=hf_tokenizer(pad_token="!"), unet=models["unet"], controlnet=ref_controlnet,
        scheduler=diffusers.EulerDiscreteScheduler(**SD_SCHEDULER, timestep_spacing="linspace"),
        add_watermarker=False)
    ref = pipe(PROMPT, image=hint, negative_prompt=NEGATIVE, sigmas=sigmas.tolist(), guidance_scale=6, height=SIZE,
               width=SIZE, controlnet_conditioning_scale=0.8, generator=generators([SEED]), output_type="np").images
    assert_images_agree(result.images, ref)
    assert np.abs(np.asarray(result.images[0], np.int16) - np.asarray(plain.images[0], np.int16)).max() > 8


def test_a_controlnet_of_the_other_family_is_refused_before_any_step(models, sdxl_controlnet):
    from PIL import Image

    from engine import EngineError
    from engine.control import ControlUnit
    from engine.models.controlnet import ControlNetConfig, ControlNetModel
    from tests.test_controlnet_parity import reference_controlnet
    sd15 = reference_controlnet(cross_attention_dim=768)
    sd15_ours = engine_twin(ControlNetModel, ControlNetConfig.from_dict(dict(sd15.config)), sd15)
    hint = Image.new("RGB", (SIZE, SIZE))
    steps = []
    with pytest.raises(EngineError, match="ControlNet 0 is made for SD1.x models; the loaded model is SDXL"):
        models["engine"].generate(GenerationRequest(prompt=PROMPT, steps=2, width=SIZE, height=SIZE,
                                                    control_units=[ControlUnit(sd15_ours, hint)]),
                                  progress=lambda *a: steps.append(a))
    assert steps == []


def test_sdxl_controlnets_load_from_diffusers_folders_and_diffusers_named_single_files(sdxl_controlnet, tmp_path):
    from engine.loading.controlnet import controlnet_kind, load_controlnet
    ref, ours = sdxl_controlnet
    ref.save_pretrained(tmp_path / "folder", variant="fp16")
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, tmp_path / "controlnet-xl.safetensors")
    g = torch.Generator().manual_seed(2)
    inputs = (torch.randn(1, 4, 16, 16, generator=g), torch.tensor([500.0]), torch.randn(1, 7, 192, generator=g),
              torch.rand(1, 3, 64, 64, generator=g))
    added = dict(text_embeds=torch.randn(1, 128, generator=g), time_ids=torch.tensor([[64.0, 64, 0, 0, 64, 64]]))
    with torch.no_grad():
        expected = ours(*inputs, **added)
        for path in (tmp_path / "folder", tmp_path / "controlnet-xl.safetensors"):
            assert controlnet_kind(path) == (True, 192)
            down, mid = load_controlnet(path)(*inputs, **added)
            # the same weights; loaded ones are laid out channels-last, so sums may round in another order
            worst = max(((a - b).abs().max() / b.abs().max()).item() for a, b in zip([*down, mid],
                                                                                   [*expected[0], expected[1]]))
            print(f"{path.name}: max relative difference {worst:.1e}")
            assert worst < 1e-5, (path.name, worst)


def test_controlnet_lists_show_the_loaded_models_family(models, sdxl_controlnet, tmp_path):
    import json

    from ui.model_state import ModelState
    folder = tmp_path / "models" / "ControlNet"
    (folder / "sd15-canny").mkdir(parents=True)
    (folder / "sd15-canny" / "config.json").write_text(json.dumps({"cross_attention_dim": 768}))
    (folder / "sd15-canny" / "diffusion_pytorch_model.safetensors").write_bytes(b"")
    save_file({k: v.contiguous() for k, v in sdxl_controlnet[0].state_dict().items()}, folder / "xl-canny.safetensors")
    state = ModelState(tmp_path / "models", Device.cpu_fp32())
    assert state.controlnet_names() == ["sd15-canny", "xl-canny.safetensors"]     # no model yet: all of them
    state.pipeline = models["engine"]
    assert state.controlnet_names() == ["xl-canny.safetensors"]


def test_v_pred_and_ztsnr_keys_mark_noobai_style_files(models, tmp_path):
    from engine.errors import UnsupportedArchitectureError
    from tests.reference import sgm_state_dict
    sgm = sgm_state_dict(models["unet"], models["vae"], models["clip_l"], models["bigg"])
    marks = {"v": {"v_pred": torch.tensor([])}, "v+ztsnr": {"v_pred": torch.tensor([]), "ztsnr": torch.tensor([])},
             "edm": {"edm_mean": torch.zeros(1, 4, 1, 1)}}
    for name, extra in marks.items():
        save_file({**sgm, **extra}, tmp_path / f"{name}.safetensors")
    v = load_pipeline(tmp_path / "v.safetensors", Device.cpu_fp32())
    zsnr = load_pipeline(tmp_path / "v+ztsnr.safetensors", Device.cpu_fp32())
    assert v.prediction_type == zsnr.prediction_type == "v_prediction"
    assert not v.schedule.zero_terminal_snr and zsnr.schedule.zero_terminal_snr
    assert "Noise Schedule: Zero Terminal SNR" in zsnr.generate(GenerationRequest(
        prompt=PROMPT, steps=2, width=SIZE, height=SIZE, seed=1)).infotexts[0]
    with pytest.raises(UnsupportedArchitectureError, match="EDM-parametrised"):
        load_pipeline(tmp_path / "edm.safetensors", Device.cpu_fp32())


def test_turbo_one_step_matches_diffusers_trailing_schedule_without_a_cfg_pass(models):
    """The Consistency tab's Turbo method: Euler a on SGM Uniform (starting at timestep 999), CFG 1; one step
    against diffusers' SDXL-Turbo recipe (EulerAncestral, "trailing" spacing, guidance 0)."""
    from ui.consistency import METHODS
    sampler, schedule, steps, cfg, _ = METHODS["Turbo"]
    engine = models["engine"]
    rows = []
    hook = engine.unet.register_forward_hook(lambda module, args, out: rows.append(args[0].shape[0]))
    try:
        ours = engine.generate(GenerationRequest(prompt=PROMPT, negative_prompt=NEGATIVE, sampler=sampler,
                                                 schedule=schedule, steps=steps, cfg_scale=cfg, width=SIZE,
                                                 height=SIZE, seed=SEED))
    finally:
        hook.remove()
    assert rows == [1]                                  # one step, and no unconditional rows
    scheduler = diffusers.EulerAncestralDiscreteScheduler(**SD_SCHEDULER, timestep_spacing="trailing")
    ref = reference(models, scheduler)(PROMPT, guidance_scale=0.0, num_inference_steps=1, height=SIZE, width=SIZE,
                                       generator=generators([SEED]), output_type="np").images
    assert_images_agree(ours.images, ref)
    assert "Sampler: Euler a, Schedule type: SGM Uniform" in ours.infotexts[0]


def test_sdxl_img2img_matches_with_a1111_step_semantics(models):
    from engine.images import to_tensor
    engine = models["engine"]
    init = engine.generate(GenerationRequest(prompt="a house", sampler="Euler", steps=3, width=SIZE, height=SIZE,
                                             seed=7)).images[0]
    req = GenerationRequest(prompt=PROMPT, negative_prompt=NEGATIVE, sampler="Euler", steps=10, cfg_scale=6,
                            width=SIZE, height=SIZE, seed=SEED, init_image=init, denoising_strength=0.5)
    ours = engine.generate(req)
    sigmas = make_sigmas("Euler", "Automatic", 10, engine.schedule)
    pipe = diffusers.StableDiffusionXLImg2ImgPipeline(
        vae=models["vae"], text_encoder=models["clip_l"], text_encoder_2=models["bigg"], tokenizer=hf_tokenizer(),
        tokenizer_2=hf_tokenizer(pad_token="!"), unet=models["unet"],
        scheduler=diffusers.EulerDiscreteScheduler(**SD_SCHEDULER, timestep_spacing="linspace"),
        add_watermarker=False)
    ref = pipe(PROMPT, negative_prompt=NEGATIVE, image=engine.encode_images(to_tensor(init)), strength=0.65,
               sigmas=sigmas.tolist(), guidance_scale=6, generator=generators([SEED]), output_type="np").images
    assert_images_agree(ours.images, ref)     # diffusers starts at index 10 - int(6.5) = 4, as A1111 with 0.5


def test_a_9_channel_sdxl_inpainting_unet_matches_the_inpaint_pipeline(models):
    """SDXL inpainting UNets (9-channel conv_in): whole picture masked, "latent nothing", strength 1."""
    from PIL import Image
    engine = models["engine"]
    state = dict(models["unet"].state_dict())
    conv = state["conv_in.weight"]
    state["conv_in.weight"] = torch.cat([conv, torch.randn(conv.shape[0], 5, 3, 3) * 0.05], dim=1)
    with torch.device("meta"):
        unet9 = diffusers.UNet2DConditionModel(**{**SLIM_UNET, "in_channels": 9})
    unet9.load_state_dict(state, assign=True)
    unet9.eval()
    inpaint = Pipeline(engine_twin(UNet2DConditionModel, UNetConfig.from_dict(dict(unet9.config)), unet9), engine.vae,
                       engine.text_encoder, engine.tokenizer, "epsilon", engine.device, engine.source,
                       second_text=engine.prompts.towers[1])
    inpaint.model_hash = "0123456789"
    assert "9-channel inpainting" in inpaint.summary()
    image, mask = Image.new("RGB", (SIZE, SIZE), (200, 80, 40)), Image.new("L", (SIZE, SIZE), 255)
    req = GenerationRequest(prompt=PROMPT, negative_prompt=NEGATIVE, sampler="Euler", steps=STEPS, cfg_scale=6,
                            width=SIZE, height=SIZE, seed=SEED, init_image=image, mask=mask, mask_blur=0,
                            denoising_strength=1.0, masked_content="latent nothing")
    ours = inpaint.generate(req)
    sigmas = make_sigmas("Euler", "Automatic", STEPS, engine.schedule)
    pipe = diffusers.StableDiffusionXLInpaintPipeline(
        vae=models["vae"], text_encoder=models["clip_l"], text_encoder_2=models["bigg"], tokenizer=hf_tokenizer(),
        tokenizer_2=hf_tokenizer(pad_token="!"), unet=unet9,
        scheduler=diffusers.EulerDiscreteScheduler(**SD_SCHEDULER, timestep_spacing="linspace"),
        add_watermarker=False)
    ref = pipe(PROMPT, negative_prompt=NEGATIVE, image=image, mask_image=mask,
               masked_image_latents=engine.encode_images(torch.zeros(1, 3, SIZE, SIZE)), strength=1.0, height=SIZE,
               width=SIZE, sigmas=sigmas.tolist(), guidance_scale=6, generator=generators([SEED]),
               output_type="np").images
    assert_images_agree(ours.images, ref)


def test_an_lcm_distilled_sdxl_unet_takes_the_guidance_as_an_embedding(models):
    """LCM-distilled SDXL UNets (time_cond_proj_dim 256): the guidance scale goes in as a w-embedding beside
    the micro-conditioning, one UNet row a step, as diffusers' SDXL pipeline runs them with LCMScheduler."""
    torch.manual_seed(2)
    with torch.no_grad():
        unet = diffusers.UNet2DConditionModel(**SLIM_UNET, time_cond_proj_dim=256).eval()
    base = models["engine"]
    engine = Pipeline(engine_twin(UNet2DConditionModel, UNetConfig.from_dict(dict(unet.config)), unet), base.vae,
                      base.text_encoder, CLIPTokenizer(), "epsilon", Device.cpu_fp32(), "lcm-sdxl-random.safetensors",
                      second_text=base.prompts.towers[1])
    engine.model_hash = "0123456789"
    rows = []
    hook = engine.unet.register_forward_hook(lambda module, args, out: rows.append(args[0].shape[0]))
    try:
        ours = engine.generate(GenerationRequest(prompt=PROMPT, negative_prompt=NEGATIVE, sampler="LCM", steps=4,
                                                 cfg_scale=8, width=SIZE, height=SIZE, seed=SEED))
    finally:
        hook.remove()
    assert rows == [1, 1, 1, 1]
    pipe = diffusers.StableDiffusionXLPipeline(
        vae=models["vae"], text_encoder=models["clip_l"], text_encoder_2=models["bigg"], tokenizer=hf_tokenizer(),
        tokenizer_2=hf_tokenizer(pad_token="!"), unet=unet, scheduler=diffusers.LCMScheduler(**SD_SCHEDULER),
        add_watermarker=False)
    ref = pipe(PROMPT, num_inference_steps=4, guidance_scale=8, height=SIZE, width=SIZE,
               generator=generators([SEED]), output_type="np").images
    assert_images_agree(ours.images, ref)
    other = engine.generate(GenerationRequest(prompt=PROMPT, sampler="LCM", steps=4, cfg_scale=2, width=SIZE,
                                              height=SIZE, seed=SEED)).images[0]
    assert other.tobytes() != ours.images[0].tobytes()     # the scale reaches the UNet
