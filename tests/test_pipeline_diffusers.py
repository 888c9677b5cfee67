"""End to end in the full SD1.5 architecture (random weights): the engine against diffusers' pipelines.

Same weights, seeds and sigmas; images compared after rounding to 8 bits. Intentional difference:
img2img follows A1111's step semantics (strength s over N steps runs int(s N) + 1 steps), so diffusers is
given the strength that starts at the same sigma.
"""
import diffusers
import numpy as np
import pytest
import torch
import transformers

from engine import Device, GenerationRequest
from engine.images import to_tensor
from engine.models import AutoencoderKL, CLIPTextConfig, CLIPTextModel, UNet2DConditionModel, UNetConfig, VAEConfig
from engine.pipeline import Pipeline
from engine.sampling import make_sigmas
from engine.tokenizer import CLIPTokenizer, vocabulary
from tests.reference import SD15_CLIP, SD15_UNET, SD15_VAE
from tests.test_models_parity import engine_twin

SIZE, STEPS, SEED = 64, 6, 1234
SD_SCHEDULER = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                    steps_offset=1)
PROMPT, NEGATIVE = "a red fox in the snow", "blurry"


def hf_tokenizer():
    vocab, merges = vocabulary()
    tokenizer = transformers.CLIPTokenizer(vocab=vocab, merges=merges)
    tokenizer.model_max_length = 77
    return tokenizer


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    with torch.no_grad():
        unet = diffusers.UNet2DConditionModel(**SD15_UNET).eval()
        vae = diffusers.AutoencoderKL(**SD15_VAE).eval()
        clip = transformers.CLIPTextModel(transformers.CLIPTextConfig(**SD15_CLIP)).eval()
    engine = Pipeline(engine_twin(UNet2DConditionModel, UNetConfig.from_dict(dict(unet.config)), unet),
                      engine_twin(AutoencoderKL, VAEConfig.from_dict(dict(vae.config)), vae),
                      engine_twin(CLIPTextModel, CLIPTextConfig.from_dict(SD15_CLIP), clip),
                      CLIPTokenizer(), "epsilon", Device.cpu_fp32(), "sd15-random.safetensors")
    engine.model_hash = "0123456789"   # no file behind this pipeline
    return dict(unet=unet, vae=vae, clip=clip, engine=engine)


def reference(models, cls, scheduler, unet=None):
    return cls(vae=models["vae"], text_encoder=models["clip"], tokenizer=hf_tokenizer(), unet=unet or models["unet"],
               scheduler=scheduler, safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def to_array(images):
    return np.stack([np.asarray(im, dtype=np.int16) for im in images])


def assert_images_agree(ours, ref_float):
    ref = np.round(ref_float * 255).astype(np.int16)
    diff = np.abs(to_array(ours) - ref).max()
    print(f"max difference: {diff} levels of 255")
    assert diff <= 1


def generators(seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


def test_txt2img_euler_matches_stable_diffusion_pipeline(models):
    engine = models["engine"]
    req = GenerationRequest(prompt=PROMPT, negative_prompt=NEGATIVE, sampler="Euler", steps=STEPS, cfg_scale=7,
                            width=SIZE, height=SIZE, seed=SEED, batch_size=2)
    ours = engine.generate(req)
    assert ours.seeds == [SEED, SEED + 1]
    sigmas = make_sigmas("Euler", "Automatic", STEPS, engine.schedule)
    scheduler = diffusers.EulerDiscreteScheduler(**SD_SCHEDULER, timestep_spacing="linspace")
    ref = reference(models, diffusers.StableDiffusionPipeline, scheduler)(
        PROMPT, negative_prompt=NEGATIVE, sigmas=sigmas.tolist(), guidance_scale=7, height=SIZE, width=SIZE,
        num_images_per_prompt=2, generator=generators([SEED, SEED + 1]), output_type="np").images
    assert_images_agree(ours.images, ref)


def test_txt2img_ddim_matches_stable_diffusion_pipeline(models):
    req = GenerationRequest(prompt=PROMPT, sampler="DDIM", steps=STEPS, cfg_scale=5, width=SIZE, height=SIZE, seed=SEED)
    ours = models["engine"].generate(req)
    scheduler = diffusers.DDIMScheduler(**SD_SCHEDULER, set_alpha_to_one=False, clip_sample=False)
    ref = reference(models, diffusers.StableDiffusionPipeline, scheduler)(
        PROMPT, num_inference_steps=STEPS, guidance_scale=5, height=SIZE, width=SIZE, generator=generators([SEED]),
        output_type="np").images
    assert_images_agree(ours.images, ref)


def test_img2img_matches_with_a1111_step_semantics(models):
    engine = models["engine"]
    init = engine.generate(GenerationRequest(prompt="a house", sampler="Euler", steps=3, width=SIZE, height=SIZE,
                                             seed=7)).images[0]
    steps, strength = 10, 0.5      # A1111: int(0.5 * 10) + 1 = 6 steps, from the 5th sigma of the 10-step grid
    req = GenerationRequest(prompt=PROMPT, sampler="Euler", steps=steps, cfg_scale=7, width=SIZE, height=SIZE,
                            seed=SEED, init_image=init, denoising_strength=strength)
    seen = []
    ours = engine.generate(req, progress=lambda i, total, latents: seen.append((i, total)))
    assert seen[-1] == (6, 6)
    init_latents = engine.encode_images(to_tensor(init))
    sigmas = make_sigmas("Euler", "Automatic", steps, engine.schedule)
    scheduler = diffusers.EulerDiscreteScheduler(**SD_SCHEDULER, timestep_spacing="linspace")
    ref = reference(models, diffusers.StableDiffusionImg2ImgPipeline, scheduler)(
        PROMPT, image=init_latents, strength=0.65,   # diffusers starts at index 10 - int(10 * 0.65) = 4, as A1111
        sigmas=sigmas.tolist(), guidance_scale=7, generator=generators([SEED]), output_type="np").images
    assert_images_agree(ours.images, ref)


def test_inpainting_unet_matches_inpaint_pipeline(models):
    """A 9-channel UNet (the SD1.5 weights with a 9-channel conv_in), whole image masked, masked content
    "latent nothing" and strength 1: the engine starts from pure noise as diffusers does."""
    engine = models["engine"]
    state = dict(models["unet"].state_dict())
    state["conv_in.weight"] = torch.cat([state["conv_in.weight"], torch.randn(320, 5, 3, 3) * 0.05], dim=1)
    with torch.device("meta"):
        unet9 = diffusers.UNet2DConditionModel(**SD15_UNET, in_channels=9)
    unet9.load_state_dict(state, assign=True)
    unet9.eval()
    inpaint = Pipeline(engine_twin(UNet2DConditionModel, UNetConfig.from_dict(dict(unet9.config)), unet9),
                       engine.vae, engine.text_encoder, engine.tokenizer, "epsilon", engine.device, engine.source)
    inpaint.model_hash = "0123456789"
    from PIL import Image
    image = Image.new("RGB", (SIZE, SIZE), (200, 80, 40))
    mask = Image.new("L", (SIZE, SIZE), 255)
    req = GenerationRequest(prompt=PROMPT, sampler="Euler", steps=STEPS, cfg_scale=7, width=SIZE, height=SIZE,
                            seed=SEED, init_image=image, mask=mask, mask_blur=0, denoising_strength=1.0,
                            masked_content="latent nothing")
    ours = inpaint.generate(req)
    masked_latents = engine.encode_images(torch.zeros(1, 3, SIZE, SIZE))
    sigmas = make_sigmas("Euler", "Automatic", STEPS, engine.schedule)
    scheduler = diffusers.EulerDiscreteScheduler(**SD_SCHEDULER, timestep_spacing="linspace")
    ref = reference(models, diffusers.StableDiffusionInpaintPipeline, scheduler, unet=unet9)(
        PROMPT, image=image, mask_image=mask, masked_image_latents=masked_latents, strength=1.0, height=SIZE,
        width=SIZE, sigmas=sigmas.tolist(), guidance_scale=7, generator=generators([SEED]),
        output_type="np").images
    assert_images_agree(ours.images, ref)


def lcm_distilled(models):
    """The SD1.5 UNet with a guidance-embedding layer (time_cond_proj_dim 256, LCM_Dreamshaper_v7's layout)."""
    torch.manual_seed(3)
    with torch.no_grad():
        unet = diffusers.UNet2DConditionModel(**SD15_UNET, time_cond_proj_dim=256).eval()
        unet.load_state_dict({**models["unet"].state_dict(), **{k: v for k, v in unet.state_dict().items()
                                                                if "cond_proj" in k}})
    engine = models["engine"]
    ours = Pipeline(engine_twin(UNet2DConditionModel, UNetConfig.from_dict(dict(unet.config)), unet), engine.vae,
                    engine.text_encoder, engine.tokenizer, "epsilon", engine.device, "lcm-random.safetensors")
    ours.model_hash = "0123456789"
    return unet, ours


def test_lcm_distilled_unet_matches_latent_consistency_pipeline(models):
    """4 LCM steps with guidance 8 as a w-embedding, two images of consecutive seeds."""
    unet, engine = lcm_distilled(models)
    req = GenerationRequest(prompt=PROMPT, sampler="LCM", steps=4, cfg_scale=8, width=SIZE, height=SIZE, seed=SEED,
                            batch_size=2)
    ours = engine.generate(req)
    assert "Sampler: LCM, Schedule type: LCM, CFG scale: 8" in ours.infotexts[0]
    pipe = diffusers.LatentConsistencyModelPipeline(
        vae=models["vae"], text_encoder=models["clip"], tokenizer=hf_tokenizer(), unet=unet,
        scheduler=diffusers.LCMScheduler(**SD_SCHEDULER), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)
    ref = pipe(PROMPT, num_inference_steps=4, guidance_scale=8, height=SIZE, width=SIZE, num_images_per_prompt=2,
               generator=generators([SEED, SEED + 1]), output_type="np").images
    assert_images_agree(ours.images, ref)


def test_lcm_img2img_takes_its_steps_from_the_strength_part_of_the_grid(models):
    """LCM img2img: 2 steps at strength 0.5 visit timesteps 499 and 259, as diffusers' LCM img2img pipeline."""
    unet, engine = lcm_distilled(models)
    init = engine.generate(GenerationRequest(prompt="a house", sampler="LCM", steps=1, width=SIZE, height=SIZE,
                                             seed=7)).images[0]
    seen = []
    req = GenerationRequest(prompt=PROMPT, sampler="LCM", steps=2, cfg_scale=8, width=SIZE, height=SIZE, seed=SEED,
                            init_image=init, denoising_strength=0.5)
    ours = engine.generate(req, progress=lambda i, total, latents: seen.append((i, total)))
    assert seen == [(1, 2), (2, 2)]
    pipe = diffusers.LatentConsistencyModelImg2ImgPipeline(
        vae=models["vae"], text_encoder=models["clip"], tokenizer=hf_tokenizer(), unet=unet,
        scheduler=diffusers.LCMScheduler(**SD_SCHEDULER), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)
    ref = pipe(PROMPT, image=engine.encode_images(to_tensor(init)), strength=0.5,
               num_inference_steps=2, guidance_scale=8, generator=generators([SEED]), output_type="np").images
    assert_images_agree(ours.images, ref)


def test_zero_terminal_snr_v_prediction_matches_rescaled_scheduler(models):
    """A model trained on the zero-terminal-SNR schedule (Lin et al. 2024; diffusers' rescale_betas_zero_snr):
    the engine's rescaled table is diffusers' (but for the last entry, which A1111 and ComfyUI keep just above
    zero so that sigma_max stays finite), and a v-prediction txt2img agrees with diffusers' pipeline."""
    rescaled = diffusers.DDPMScheduler(**SD_SCHEDULER, rescale_betas_zero_snr=True).alphas_cumprod.double()
    engine = Pipeline(models["engine"].unet, models["engine"].vae, models["engine"].text_encoder, CLIPTokenizer(),
                      "v_prediction", Device.cpu_fp32(), "sd15-random-ztsnr", zero_terminal_snr=True)
    engine.model_hash = "0123456789"   # no file behind this pipeline
    torch.testing.assert_close(engine.schedule.alphas_cumprod[:-1], rescaled[:-1], rtol=1e-5, atol=1e-9)
    assert rescaled[-1] == 0 and 4000 < engine.schedule.sigma_max < 5000
    req = GenerationRequest(prompt=PROMPT, sampler="Euler", steps=STEPS, cfg_scale=7, width=SIZE, height=SIZE,
                            seed=SEED)
    ours = engine.generate(req)
    assert "Noise Schedule: Zero Terminal SNR" in ours.infotexts[0]
    sigmas = make_sigmas("Euler", "Automatic", STEPS, engine.schedule)
    assert sigmas[0] > 4000
    scheduler = diffusers.EulerDiscreteScheduler(**SD_SCHEDULER, timestep_spacing="linspace",
                                                 prediction_type="v_prediction", rescale_betas_zero_snr=True)
    ref = reference(models, diffusers.StableDiffusionPipeline, scheduler)(
        PROMPT, sigmas=sigmas.tolist(), guidance_scale=7, height=SIZE, width=SIZE, generator=generators([SEED]),
        output_type="np").images
    assert_images_agree(ours.images, ref)
