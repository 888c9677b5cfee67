"""LCM and consistency-model sampling against diffusers' LCMScheduler and CMStochasticIterativeScheduler,
step by step with the same UNet and the same noise draws."""
import diffusers
import numpy as np
import pytest
import torch

from engine.models import UNet2DConditionModel, UNetConfig
from engine.sampling import SAMPLERS, Conditioning, Denoiser, DiscreteSchedule, make_sigmas
from engine.sampling.consistency import ConsistencySchedule, guidance_embedding, sample_consistency
from engine.sampling.schedules import lcm, lcm_timesteps
from tests.reference import TINY_UNET
from tests.test_models_parity import engine_twin
from tests.test_samplers import SD_SCHEDULER, close

W_DIM = 32


@pytest.fixture(scope="module")
def unets():
    torch.manual_seed(0)
    plain = diffusers.UNet2DConditionModel(**TINY_UNET).eval()
    distilled = diffusers.UNet2DConditionModel(**TINY_UNET, time_cond_proj_dim=W_DIM).eval()
    twin = lambda ref: engine_twin(UNet2DConditionModel, UNetConfig.from_dict(dict(ref.config)), ref)  # noqa: E731
    return dict(plain=(plain, twin(plain)), distilled=(distilled, twin(distilled)),
                context=torch.randn(2, 77, TINY_UNET["cross_attention_dim"]),
                uncond=torch.randn(2, 77, TINY_UNET["cross_attention_dim"]))


def test_lcm_timesteps_match_diffusers():
    for strength in (1.0, 0.75, 0.5, 0.3):
        for steps in range(1, int(50 * strength) + 1):
            ref = diffusers.LCMScheduler(**SD_SCHEDULER)
            ref.set_timesteps(steps, strength=strength)
            assert lcm_timesteps(steps, strength) == ref.timesteps.tolist(), (steps, strength)
    assert make_sigmas("LCM", "Automatic", 4, DiscreteSchedule()).tolist() == lcm(4, DiscreteSchedule()).tolist()
    with pytest.raises(ValueError, match="1 to 15 steps at denoising strength 0.3"):
        lcm_timesteps(20, 0.3)


def test_guidance_embedding_matches_diffusers():
    w = torch.tensor([0.0, 3.5, 7.0])
    for dim in (32, 256, 33):
        ref = diffusers.LatentConsistencyModelPipeline.get_guidance_scale_embedding(None, w, dim)
        torch.testing.assert_close(guidance_embedding(w, dim), ref, atol=1e-5, rtol=1e-5)


def run_lcm_scheduler(ref_unet, latents, steps, context, generator, w_embedding=None, uncond=None, cfg=1.0):
    """diffusers' LCM loop; returns the denoised estimate of every step and the final sample."""
    scheduler = diffusers.LCMScheduler(**SD_SCHEDULER)
    scheduler.set_timesteps(steps)
    seen = []
    with torch.no_grad():
        for t in scheduler.timesteps:
            if uncond is None:
                eps = ref_unet(latents, t, context, timestep_cond=w_embedding).sample
            else:
                both = ref_unet(torch.cat([latents, latents]), t, torch.cat([context, uncond])).sample
                eps_cond, eps_uncond = both.chunk(2)
                eps = eps_uncond + cfg * (eps_cond - eps_uncond)
            latents, denoised = scheduler.step(eps, t, latents, generator=generator, return_dict=False)
            seen.append(denoised)
    return seen, latents


@pytest.mark.parametrize("kind", ["distilled", "plain"])
def test_lcm_sampler_matches_lcm_scheduler_every_step(unets, kind):
    """'distilled': guidance as w-embedding (LCM_Dreamshaper_v7 layout); 'plain': ordinary CFG (LCM-LoRA)."""
    ref_unet, unet = unets[kind]
    context, schedule = unets["context"], DiscreteSchedule()
    w = torch.full((2,), 7.5 - 1)
    cond = Conditioning(context, timestep_cond=guidance_embedding(w, W_DIM)) if kind == "distilled" else \
        Conditioning(context, unets["uncond"])
    cfg = 1.0 if kind == "distilled" else 1.5
    for steps in (1, 2, 4, 8):
        start = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(steps))
        ref_seen, ref_final = run_lcm_scheduler(ref_unet, start.clone(), steps, context, torch.Generator().manual_seed(9),
                                                cond.timestep_cond, cond.uncond, cfg)
        sigmas = make_sigmas("LCM", "Automatic", steps, schedule)
        denoiser = Denoiser(unet, schedule, boundary=SAMPLERS["LCM"].boundary)
        draws = torch.Generator().manual_seed(9)
        seen = []
        ours = SAMPLERS["LCM"].function(lambda x, s: denoiser(x, s, cond, cfg), start * (1 + sigmas[0] ** 2) ** 0.5,
                                        sigmas, noise=lambda s, s_next: torch.randn(start.shape, generator=draws),
                                        callback=lambda i, x, d: seen.append(d))
        assert len(seen) == steps
        for i, (a, b) in enumerate(zip(seen, ref_seen)):
            assert close(a, b) <= 1e-4, f"{kind}, {steps} steps, step {i}: {close(a, b):.2e}"
        assert close(ours, ref_final) <= 1e-4


def test_lcm_boundary_condition_is_the_identity_at_t_0(unets):
    """f(x, t=0) = x_t (c_skip = 1, c_out = 0), where the plain x_0 estimate is something else."""
    _, unet = unets["plain"]
    schedule = DiscreteSchedule()
    cond = Conditioning(unets["context"])
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    sigma = schedule.sigmas[0]
    boundary = Denoiser(unet, schedule, boundary="lcm")(x, sigma, cond)
    torch.testing.assert_close(boundary, x / (1 + sigma ** 2) ** 0.5)
    assert close(Denoiser(unet, schedule)(x, sigma, cond), boundary) > 1e-3


@pytest.mark.parametrize("sigma_data, n_levels", [(0.5, 40), (1.0, 1281)])
def test_consistency_model_matches_cm_stochastic_iterative_scheduler(unets, sigma_data, n_levels):
    """An EDM-parametrised consistency model through the engine's Denoiser, on its ConsistencySchedule's grid,
    sampled with Algorithm 1 of Song et al. 2023, against diffusers' scheduler with the same weights and draws.
    diffusers clips x_0 to [-1, 1] for pixel models; latents are not clipped (clip_denoised=False)."""
    ref_unet, our_unet = unets["plain"]
    context = unets["context"]
    schedule = ConsistencySchedule(sigma_data=sigma_data, num_train_timesteps=n_levels)
    denoiser = Denoiser(our_unet, schedule, "consistency", boundary="lcm")   # the LCM boundary is not re-applied
    for steps in (1, 2, 3, 5):
        scheduler = diffusers.CMStochasticIterativeScheduler(num_train_timesteps=n_levels, sigma_data=sigma_data,
                                                             clip_denoised=False)
        scheduler.set_timesteps(steps)
        sigmas = schedule.grid(steps)
        torch.testing.assert_close(sigmas, scheduler.sigmas.float())
        start = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(steps)) * scheduler.init_noise_sigma
        generator = torch.Generator().manual_seed(3)
        latents = start.clone()
        with torch.no_grad():
            for t in scheduler.timesteps:
                out = ref_unet(scheduler.scale_model_input(latents, t), t, context).sample
                latents = scheduler.step(out, t, latents, generator=generator).prev_sample
        draws = torch.Generator().manual_seed(3)
        with torch.no_grad():
            ours = sample_consistency(lambda x, s: denoiser(x, s, Conditioning(context)), start.clone(), sigmas,
                                      noise=lambda s, s_next: torch.randn(start.shape, generator=draws))
        assert close(ours, latents) <= 1e-4, f"{steps} steps: {close(ours, latents):.2e}"


def test_consistency_grid_for_img2img_starts_lower_and_refuses_too_many_steps():
    schedule = ConsistencySchedule(num_train_timesteps=41)
    full, half = schedule.grid(2), schedule.grid(2, strength=0.5)
    assert full[0] == pytest.approx(80.0) and half[0] < full[0] / 10 and half[-1] == pytest.approx(0.002)
    assert (half[:-1].diff() < 0).all()
    with pytest.raises(ValueError, match="1 to 41 steps"):
        schedule.grid(42)
    with pytest.raises(ValueError, match="ConsistencySchedule"):
        Denoiser(lambda *a, **k: None, schedule, "epsilon")


@pytest.mark.parametrize("gamma", [0.3, 0.0, 1.0])
def test_tcd_sampler_matches_tcd_scheduler(unets, gamma):
    """Trajectory consistency distillation's sampler against diffusers' TCDScheduler: same UNet (a plain eps
    UNet, as TCD models and TCD-LoRAs are), same noise draws, the same timesteps and final sample."""
    ref_unet, unet = unets["plain"]
    context, schedule = unets["context"], DiscreteSchedule()
    cond = Conditioning(context)
    for steps in (1, 2, 3, 4, 8):
        start = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(steps))
        scheduler = diffusers.TCDScheduler(**SD_SCHEDULER)
        scheduler.set_timesteps(steps)
        latents, generator = start.clone(), torch.Generator().manual_seed(9)
        with torch.no_grad():
            for t in scheduler.timesteps:
                eps = ref_unet(latents, t, context).sample
                latents = scheduler.step(eps, t, latents, eta=gamma, generator=generator, return_dict=False)[0]
        sigmas = make_sigmas("TCD", "Automatic", steps, schedule)
        assert schedule.sigma_to_t(sigmas[:-1]).round().long().tolist() == scheduler.timesteps.tolist()
        denoiser = Denoiser(unet, schedule)
        draws = torch.Generator().manual_seed(9)
        ours = SAMPLERS["TCD"].function(lambda x, s: denoiser(x, s, cond), start * (1 + sigmas[0] ** 2) ** 0.5,
                                        sigmas, noise=lambda s, s_next: torch.randn(start.shape, generator=draws),
                                        eta=gamma, schedule=schedule)
        assert close(ours, latents) <= 1e-4, f"gamma {gamma}, {steps} steps: {close(ours, latents):.2e}"


def test_tcd_runs_from_a_request_with_eta_as_gamma():
    from engine import Device, GenerationRequest, load_pipeline
    from training.common import STARTER_DIR
    pipe = load_pipeline(STARTER_DIR, Device.cpu_fp32())
    base = dict(prompt="a red star on a blue background", sampler="TCD", steps=4, cfg_scale=3, seed=2)
    first = pipe.generate(GenerationRequest(**base)).images[0]
    assert "Sampler: TCD" in first.info["parameters"]
    assert np.asarray(pipe.generate(GenerationRequest(**base)).images[0]).tolist() == np.asarray(first).tolist()
    other = pipe.generate(GenerationRequest(**base, eta=0.9)).images[0]
    assert np.abs(np.asarray(other, np.float32) - np.asarray(first, np.float32)).mean() > 1


def test_the_shipped_starter_ct_draws_the_background_its_prompt_names():
    """starter-ct (consistency training, no teacher) loads as a consistency model and follows a prompt's
    background colour in 2 steps at CFG 3 on held-out captions far more often than the empty prompt does."""
    from engine import Device, GenerationRequest, load_pipeline
    from training.common import EVAL_SEED_START, STARTER_DIR
    from training.evaluate import analyse
    from training.scenes import scene_for
    pipe = load_pipeline(STARTER_DIR.parent / "starter-ct", Device.cpu_fp32())
    assert pipe.consistency_trained and pipe.schedule.num_train_timesteps == 1281
    cases = [scene_for(EVAL_SEED_START + 11 * i) for i in range(12)]

    def backgrounds_right(prompt_of) -> int:
        right = 0
        for i, (scene, text) in enumerate(cases):
            image = pipe.generate(GenerationRequest(prompt=prompt_of(text), sampler="Consistency", steps=2,
                                                    cfg_scale=3, width=64, height=64, seed=i)).images[0]
            right += (analyse(image) or {}).get("background") == scene.background
        return right

    with_prompt, empty = backgrounds_right(lambda text: text), backgrounds_right(lambda text: "")
    assert with_prompt >= 6 and empty <= 3, (with_prompt, empty)
