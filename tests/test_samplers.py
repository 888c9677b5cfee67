"""Samplers and schedules against k-diffusion (A1111's sampler code) and diffusers' schedulers, same UNet."""
import diffusers
import numpy as np
import pytest
import torch
from scipy import stats

from engine.models import UNet2DConditionModel, UNetConfig
from engine.sampling import (SAMPLERS, SCHEDULE_NAMES, BrownianNoise, Conditioning, Denoiser, DiscreteSchedule,
                             ImageNoise, make_sigmas)
from engine.sampling import schedules
from tests.k_diffusion_reference import LatentDiffusionShim, import_k_diffusion
from tests.reference import TINY_UNET
from tests.test_models_parity import engine_twin

K_SAMPLERS = {"Euler": "sample_euler", "Euler a": "sample_euler_ancestral", "Heun": "sample_heun", "LMS": "sample_lms",
              "DPM++ 2M": "sample_dpmpp_2m", "DPM++ 2M SDE": "sample_dpmpp_2m_sde", "DPM++ SDE": "sample_dpmpp_sde",
              "DPM++ 2S a": "sample_dpmpp_2s_ancestral", "DPM++ 2M SDE Heun": ("sample_dpmpp_2m_sde", {"solver_type": "heun"}),
              "DPM++ 3M SDE": "sample_dpmpp_3m_sde", "DPM2": "sample_dpm_2", "DPM2 a": "sample_dpm_2_ancestral"}
SCHEDULES = ["Automatic", "Karras", "Exponential", "SGM Uniform", "DDIM"]
A1111_110_SCHEDULES = ["Uniform", "Karras", "Exponential", "Polyexponential", "SGM Uniform", "KL Optimal",
                       "Align Your Steps", "Simple", "Normal", "DDIM", "Beta"]
STEPS = [3, 8, 15]
SEEDS = [11, 12]
SD_SCHEDULER = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                    steps_offset=1)


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    ref_unet = diffusers.UNet2DConditionModel(**TINY_UNET).eval()
    unet = engine_twin(UNet2DConditionModel, UNetConfig.from_dict(dict(ref_unet.config)), ref_unet)
    schedule = DiscreteSchedule()
    context = torch.randn(2, 77, TINY_UNET["cross_attention_dim"])
    ks, ke = import_k_diffusion()
    k_denoiser = ke.CompVisDenoiser(LatentDiffusionShim(ref_unet, schedule.alphas_cumprod))
    return dict(ref_unet=ref_unet, schedule=schedule, context=context, ks=ks, k_denoiser=k_denoiser,
                denoiser=Denoiser(unet, schedule), cond=Conditioning(context))


def close(ours, ref):
    """Max abs difference, as a fraction of the reference's scale (at least a unit-scale latent)."""
    return ((ours - ref).abs().max() / max(1.0, ref.abs().max().item())).item()


def start_latent(sigmas):
    return torch.randn(len(SEEDS), 4, 8, 8, generator=torch.Generator().manual_seed(5)) * sigmas[0]


# ---------------------------------------------------------------- schedules


def test_schedules_match_k_diffusion_and_a1111(setup):
    ks, kd, schedule = setup["ks"], setup["k_denoiser"], setup["schedule"]
    for n in STEPS:
        torch.testing.assert_close(schedules.uniform(n, schedule), kd.get_sigmas(n), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(schedules.karras(n, schedule),
                                   ks.get_sigmas_karras(n, kd.sigma_min.item(), kd.sigma_max.item()), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(schedules.exponential(n, schedule),
                                   ks.get_sigmas_exponential(n, kd.sigma_min.item(), kd.sigma_max.item()),
                                   atol=1e-5, rtol=1e-5)
        # A1111's sgm_uniform, written out over k-diffusion's discrete schedule
        start, end = kd.sigma_to_t(kd.sigma_max), kd.sigma_to_t(kd.sigma_min)
        expected = [kd.t_to_sigma(t) for t in torch.linspace(start, end, n + 1)[:-1]] + [torch.tensor(0.0)]
        torch.testing.assert_close(schedules.sgm_uniform(n, schedule), torch.stack(expected), atol=1e-5, rtol=1e-5)
        # A1111's "DDIM" scheduler: timesteps 1, 1 + 1000 // n, ... descending, then 0
        expected = kd.sigmas[torch.arange(1, 1000, 1000 // n)[:n]].flip(0)
        torch.testing.assert_close(schedules.ddim_uniform(n, schedule)[:-1], expected, atol=1e-6, rtol=1e-6)


def test_a1111_110s_other_schedules_match_its_formulas(setup):
    """Polyexponential against k-diffusion; Normal, Simple, KL Optimal, Align Your Steps and Beta written out
    as A1111 1.10's sd_schedulers.py computes them, over k-diffusion's discrete schedule."""
    ks, kd, schedule = setup["ks"], setup["k_denoiser"], setup["schedule"]
    low, high = kd.sigma_min.item(), kd.sigma_max.item()
    zero = torch.zeros(1)
    for n in [*STEPS, 11]:
        for rho in (1.0, 2.5):
            torch.testing.assert_close(schedules.polyexponential(n, schedule, rho),
                                       ks.get_sigmas_polyexponential(n, low, high, rho), atol=1e-5, rtol=1e-5)
        start, end = kd.sigma_to_t(kd.sigma_max), kd.sigma_to_t(kd.sigma_min)
        expected = torch.cat([torch.stack([kd.t_to_sigma(t) for t in torch.linspace(start, end, n)]), zero])
        torch.testing.assert_close(schedules.normal(n, schedule), expected, atol=1e-5, rtol=1e-5)
        expected = torch.cat([torch.stack([kd.sigmas[-(1 + int(x * 1000 / n))] for x in range(n)]), zero])
        torch.testing.assert_close(schedules.simple(n, schedule), expected, atol=1e-6, rtol=1e-6)
        i = torch.arange(n + 1)
        expected = torch.tan(i / n * torch.atan(torch.tensor(low)) + (1 - i / n) * torch.atan(torch.tensor(high)))
        kl = schedules.kl_optimal(n, schedule)
        torch.testing.assert_close(kl, expected, atol=1e-5, rtol=1e-5)
        assert len(kl) == n + 1 and kl[-1].item() == pytest.approx(low, rel=1e-4)    # A1111's ends at sigma_min, not 0
        quantiles = torch.tensor(stats.beta.ppf(1 - np.linspace(0, 1, n), 0.6, 0.6), dtype=torch.float32)
        torch.testing.assert_close(schedules.beta(n, schedule), torch.cat([low + quantiles * (high - low), zero]))
    # Align Your Steps: NVIDIA's 10-step grids (11 sigmas) as published, then log-linear in between
    for family, published in schedules.ALIGN_YOUR_STEPS.items():
        grid = make_sigmas("Euler", "Align Your Steps", 11, setup["schedule"], family)
        torch.testing.assert_close(grid, torch.tensor([*published, 0.0]))
        for n in (4, 20):
            grid = make_sigmas("Euler", "Align Your Steps", n, setup["schedule"], family)
            assert len(grid) == n + 1 and grid[0].item() == pytest.approx(14.615) and grid[-2].item() == \
                pytest.approx(0.029) and bool((grid[:-1].diff() < 0).all())
    sd, xl = (make_sigmas("Euler", "Align Your Steps", 11, setup["schedule"], f) for f in ("sd", "sdxl"))
    assert sd[4].item() == pytest.approx(1.886) and xl[4].item() == pytest.approx(1.342)


@pytest.mark.parametrize("schedule", ["Polyexponential", "KL Optimal", "Align Your Steps", "Simple", "Normal", "Beta"])
def test_k_samplers_on_the_other_schedules_match_k_diffusion(setup, schedule):
    for sampler in ("Euler a", "DPM++ 2M", "DPM++ 2M SDE"):
        sigmas = make_sigmas(sampler, schedule, 8, setup["schedule"])
        x = start_latent(sigmas)
        error = close(run_engine(setup, sampler, sigmas, x), run_k_diffusion(setup, sampler, sigmas, x))
        assert error <= 1e-4, f"{sampler} / {schedule}: {error:.2e}"


def test_every_a1111_schedule_is_offered():
    assert set(A1111_110_SCHEDULES) <= set(SCHEDULE_NAMES) and SCHEDULE_NAMES[0] == "Automatic"


def test_ddim_timesteps_match_diffusers():
    schedule = DiscreteSchedule()
    for n in STEPS:
        ref = diffusers.DDIMScheduler(**SD_SCHEDULER, set_alpha_to_one=False)
        ref.set_timesteps(n)
        sigmas = make_sigmas("DDIM", "Automatic", n, schedule)
        assert schedule.sigma_to_t(sigmas[:-1]).round().long().tolist() == ref.timesteps.tolist()
        assert sigmas[-1].item() == pytest.approx(schedule.sigma_min)   # stops at alpha_bar_0


def test_automatic_resolves_to_a1111_defaults():
    schedule = DiscreteSchedule()
    for sampler, expected in [("DPM++ 2M", "Karras"), ("DPM++ 2M SDE", "Exponential"), ("Euler", "Uniform")]:
        torch.testing.assert_close(make_sigmas(sampler, "Automatic", 10, schedule),
                                   schedules.SCHEDULES[expected](10, schedule))


# ---------------------------------------------------------------- against k-diffusion


class DiffusersTimesteps(DiscreteSchedule):
    """diffusers' DPMSolver and UniPC call the UNet at the int64 timesteps they store (Karras rounded, others
    truncated); k-diffusion and the engine use the fractional timestep. To compare the solvers' maths alone,
    this schedule answers each grid sigma with the timestep the diffusers scheduler uses for it."""

    def __init__(self, sigmas, timesteps):
        super().__init__()
        self.grid, self.timesteps = sigmas[: len(timesteps)].float(), timesteps.float()

    def sigma_to_t(self, sigma):
        nearest = (sigma.reshape(-1, 1) - self.grid).abs().argmin(dim=1)
        return self.timesteps[nearest].view(sigma.shape)


def run_engine(setup, sampler, sigmas, x, timesteps_from=None, **options):
    spec = SAMPLERS[sampler]
    denoiser = setup["denoiser"]
    if timesteps_from is not None:
        denoiser = Denoiser(denoiser.unet, DiffusersTimesteps(timesteps_from.sigmas, timesteps_from.timesteps))
    model = lambda x, s: denoiser(x, s, setup["cond"])  # noqa: E731
    noise = None
    if spec.noise == "ancestral":
        noise = ImageNoise((4, 8, 8), SEEDS)
    elif spec.noise == "brownian":
        noise = BrownianNoise(x, sigmas[sigmas > 0].min(), sigmas.max(), SEEDS)
    return spec.function(model, x.clone(), sigmas, noise=noise, **options)


def run_k_diffusion(setup, sampler, sigmas, x):
    ks = setup["ks"]
    kwargs = {}
    if SAMPLERS[sampler].noise == "ancestral":
        draws = ImageNoise((4, 8, 8), SEEDS)
        kwargs["noise_sampler"] = lambda s, s_next: draws()
    elif SAMPLERS[sampler].noise == "brownian":
        kwargs["noise_sampler"] = ks.BrownianTreeNoiseSampler(x, sigmas[sigmas > 0].min(), sigmas.max(), seed=SEEDS)
    name, options = K_SAMPLERS[sampler] if isinstance(K_SAMPLERS[sampler], tuple) else (K_SAMPLERS[sampler], {})
    return getattr(ks, name)(setup["k_denoiser"], x.clone(), sigmas, disable=True,
                             extra_args={"cond": setup["context"]}, **kwargs, **options)


@pytest.mark.parametrize("sampler", K_SAMPLERS)
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_k_samplers_match_k_diffusion(setup, sampler, schedule):
    for n in STEPS:
        sigmas = make_sigmas(sampler, schedule, n, setup["schedule"])
        x = start_latent(sigmas)
        error = close(run_engine(setup, sampler, sigmas, x), run_k_diffusion(setup, sampler, sigmas, x))
        assert error <= 1e-4, f"{sampler} / {schedule} / {n} steps: {error:.2e}"


def test_eta_and_s_noise_are_honoured(setup):
    sigmas = make_sigmas("Euler a", "Automatic", 8, setup["schedule"])
    x = start_latent(sigmas)
    full = run_engine(setup, "Euler a", sigmas, x)
    quiet = run_engine(setup, "Euler a", sigmas, x, eta=0.0)
    assert (full - quiet).abs().max() > 1e-3
    torch.testing.assert_close(quiet, run_engine(setup, "Euler", sigmas, x), atol=1e-5, rtol=1e-5)  # eta 0 = Euler
    assert (run_engine(setup, "Euler a", sigmas, x, s_noise=0.5) - full).abs().max() > 1e-3


# ---------------------------------------------------------------- against diffusers


DIFFUSERS = {   # sampler -> (scheduler class, extra config, latents live in k-space?)
    "Euler": (diffusers.EulerDiscreteScheduler, {"timestep_spacing": "linspace"}, True),
    "Heun": (diffusers.HeunDiscreteScheduler, {"timestep_spacing": "linspace"}, True),
    "LMS": (diffusers.LMSDiscreteScheduler, {"timestep_spacing": "linspace"}, True),
    "DPM++ 2M": (diffusers.DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2}, False),
    "DDIM": (diffusers.DDIMScheduler, {"set_alpha_to_one": False, "clip_sample": False}, False),
    "UniPC": (diffusers.UniPCMultistepScheduler, {"solver_order": 3, "solver_type": "bh2"}, False),
}
SCHEDULE_FLAGS = {"Karras": {"use_karras_sigmas": True}, "Exponential": {"use_exponential_sigmas": True},
                  "Automatic": {}, "DDIM": {}}
CASES = [(s, sch) for s in ("Euler", "Heun", "LMS") for sch in ("Automatic", "Karras", "Exponential")] + \
        [("DPM++ 2M", "Karras"), ("DPM++ 2M", "Exponential"), ("DDIM", "DDIM"),
         ("UniPC", "Karras"), ("UniPC", "Exponential")]


def diffusers_scheduler(sampler, schedule, n, **config):
    cls, extra, _ = DIFFUSERS[sampler]
    scheduler = cls(**SD_SCHEDULER, **{**extra, **config}, **SCHEDULE_FLAGS[schedule])
    scheduler.set_timesteps(n)
    return scheduler


def run_diffusers(setup, sampler, schedule, n, x_k, stop_before_last=False, **config):
    k_space = DIFFUSERS[sampler][2]
    scheduler = diffusers_scheduler(sampler, schedule, n, **config)
    sigma0 = scheduler.sigmas[0] if hasattr(scheduler, "sigmas") else None
    latents = x_k if k_space else x_k / (1 + float(sigma0 or 0) ** 2) ** 0.5
    if sampler == "DDIM":
        latents = x_k / (1 + make_sigmas("DDIM", "DDIM", n, setup["schedule"])[0] ** 2) ** 0.5
    with torch.no_grad():
        for t in scheduler.timesteps[:-1] if stop_before_last else scheduler.timesteps:
            eps = setup["ref_unet"](scheduler.scale_model_input(latents, t), t, setup["context"]).sample
            latents = scheduler.step(eps, t, latents).prev_sample
    return latents


@pytest.mark.parametrize("sampler, schedule", CASES)
def test_deterministic_samplers_match_diffusers(setup, sampler, schedule):
    for n in STEPS:
        sigmas = make_sigmas(sampler, schedule, n, setup["schedule"])
        x = start_latent(sigmas)
        integer_t = diffusers_scheduler(sampler, schedule, n) if sampler in ("DPM++ 2M", "UniPC") else None
        options = {"variant": "bh2"} if sampler == "UniPC" else {}
        ours = run_engine(setup, sampler, sigmas, x, timesteps_from=integer_t, **options)
        ours = ours / (1 + sigmas[-1] ** 2) ** 0.5     # DDIM ends at alpha_bar_0: back to the model's latent scale
        error = close(ours, run_diffusers(setup, sampler, schedule, n, x))
        print(f"{sampler} / {schedule} / {n} steps vs diffusers: {error:.1e}")
        assert error <= 1e-4, f"{sampler} / {schedule} / {n} steps: {error:.2e}"


@pytest.mark.parametrize("order, variant", [(2, "bh2"), (2, "bh1"), (3, "bh1")])
def test_unipc_orders_and_variants_match_diffusers(setup, order, variant):
    """bh1 is compared on the latent before the final step: diffusers' bh1 step to sigma = 0 computes
    -inf * 0 and returns NaN, a step the engine takes as the data prediction itself."""
    for n in STEPS:
        sigmas = make_sigmas("UniPC", "Karras", n, setup["schedule"])
        x = start_latent(sigmas)
        integer_t = diffusers_scheduler("UniPC", "Karras", n)
        seen = {}
        ours = run_engine(setup, "UniPC", sigmas, x, timesteps_from=integer_t, order=order, variant=variant,
                          callback=lambda i, latent, denoised: seen.setdefault(i, latent))
        ref = run_diffusers(setup, "UniPC", "Karras", n, x, stop_before_last=True, solver_order=order, solver_type=variant)
        penultimate = seen[n - 1] / (1 + sigmas[n - 1] ** 2) ** 0.5
        assert close(penultimate, ref) <= 1e-4
        assert not ours.isnan().any()


def test_v_prediction_matches_diffusers(setup):
    """SD2-768-v style: the UNet predicts v; only the denoiser's scalings change."""
    n = 8
    schedule = setup["schedule"]
    sigmas = make_sigmas("Euler", "Karras", n, schedule)
    x = start_latent(sigmas)
    v_denoiser = Denoiser(setup["denoiser"].unet, schedule, "v_prediction")
    ours = SAMPLERS["Euler"].function(lambda x, s: v_denoiser(x, s, setup["cond"]), x.clone(), sigmas)
    scheduler = diffusers.EulerDiscreteScheduler(**SD_SCHEDULER, use_karras_sigmas=True,
                                                 prediction_type="v_prediction")
    scheduler.set_timesteps(n)
    latents = x.clone()
    with torch.no_grad():
        for t in scheduler.timesteps:
            out = setup["ref_unet"](scheduler.scale_model_input(latents, t), t, setup["context"]).sample
            latents = scheduler.step(out, t, latents).prev_sample
    assert close(ours, latents) <= 1e-4
    eps_result = SAMPLERS["Euler"].function(lambda x, s: setup["denoiser"](x, s, setup["cond"]), x.clone(), sigmas)
    assert close(ours, eps_result) > 1e-2


@pytest.mark.parametrize("sampler,eta", [("DPM fast", 0.0), ("DPM fast", 1.0), ("DPM adaptive", 0.0),
                                         ("DPM adaptive", 1.0)])
def test_dpm_fast_and_adaptive_match_k_diffusion(setup, sampler, eta):
    """A1111 hands k-diffusion the schedule's ends and the step count; the engine reads them off the sigmas."""
    ks = setup["ks"]
    for n in (5, 9):
        sigmas = make_sigmas(sampler, "Automatic", n, setup["schedule"])
        x = start_latent(sigmas)
        ours = run_engine(setup, sampler, sigmas, x, eta=eta)
        draws = ImageNoise((4, 8, 8), SEEDS)
        function = ks.sample_dpm_fast if sampler == "DPM fast" else ks.sample_dpm_adaptive
        extra = {"n": n} if sampler == "DPM fast" else {}
        ref = function(setup["k_denoiser"], x.clone(), sigmas[-2].item(), sigmas[0].item(), disable=True, eta=eta,
                       noise_sampler=lambda s, s_next: draws(), extra_args={"cond": setup["context"]}, **extra)
        assert close(ours, ref) <= 1e-4, f"{sampler} eta {eta}, {n} steps: {close(ours, ref):.2e}"


def test_restart_is_heun_below_20_steps_and_restarts_from_20(setup):
    from engine.sampling.restart_plms import restart_steps
    sigmas = make_sigmas("Restart", "Automatic", 12, setup["schedule"])
    x = start_latent(sigmas)
    restart = run_engine(setup, "Restart", sigmas, x)
    heun = SAMPLERS["Heun"].function(lambda x, s: setup["denoiser"](x, s, setup["cond"]), x.clone(), sigmas)
    torch.testing.assert_close(restart, heun)
    for steps, expected_heun_steps in ((20, 11 + 9), (40, 20 + 2 * 10)):     # A1111's budgets: 9 once; steps//4 twice
        pairs = restart_steps(make_sigmas("Restart", "Automatic", steps, setup["schedule"]))
        assert len(pairs) == expected_heun_steps
        ups = [i for i in range(1, len(pairs)) if pairs[i][0] > pairs[i - 1][1]]    # where noise lifts the sample
        assert len(ups) == (1 if steps < 36 else 2) and all(abs(pairs[i][0].item() - 2.0) < 0.6 for i in ups)


def test_plms_matches_compvis_written_in_ddpm_form(setup):
    """CompVis's PLMSSampler (A1111's PLMS): DDIM's timesteps, eps from the last four, first step pseudo
    improved Euler; x in DDPM form, alphas from the training schedule."""
    schedule, unet, context = setup["schedule"], setup["ref_unet"], setup["context"][:1]
    a = schedule.alphas_cumprod.float()
    for n in (4, 10):
        timesteps = list(range(1, 1000, 1000 // n))[::-1]
        sigmas = make_sigmas("PLMS", "Automatic", n, schedule)
        unit = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3))
        eps = lambda x, t: unet(x, torch.tensor([float(t)]), context).sample  # noqa: E731
        x, old = unit.clone(), []
        for i, t in enumerate(timesteps):
            t_prev = timesteps[i + 1] if i + 1 < len(timesteps) else None
            a_t, a_prev = a[t], a[t_prev] if t_prev is not None else a[0]

            def step(e):
                x0 = (x - (1 - a_t).sqrt() * e) / a_t.sqrt()
                return a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * e
            e_t = eps(x, t)
            if not old:
                e_prime = (e_t + eps(step(e_t), t_prev if t_prev is not None else t)) / 2
            elif len(old) == 1:
                e_prime = (3 * e_t - old[-1]) / 2
            elif len(old) == 2:
                e_prime = (23 * e_t - 16 * old[-1] + 5 * old[-2]) / 12
            else:
                e_prime = (55 * e_t - 59 * old[-1] + 37 * old[-2] - 9 * old[-3]) / 24
            x = step(e_prime)
            old = (old + [e_t])[-3:]
        cond = Conditioning(context)
        ours = SAMPLERS["PLMS"].function(lambda x, s: setup["denoiser"](x, s, cond), unit * (1 + sigmas[0] ** 2) ** 0.5,
                                         sigmas)
        assert close(ours / (1 + sigmas[-1] ** 2) ** 0.5, x) <= 1e-4, n


def test_ddim_cfgpp_matches_a1111s_formula_in_ddpm_form(setup):
    """A1111's ddim_cfgpp: x0 from the CFG-combined eps at scale / 12.5, renoised with the unconditional eps."""
    schedule, unet = setup["schedule"], setup["ref_unet"]
    cond, uncond = setup["context"][:1], setup["context"][1:]
    a, n, scale = schedule.alphas_cumprod.float(), 6, 7.0
    timesteps = list(range(1, 1000, 1000 // n))[:n][::-1]       # DDIM's uniform grid, n steps
    unit = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(4))
    x = unit.clone()
    for i, t in enumerate(timesteps):
        a_t, a_prev = a[t], a[timesteps[i + 1]] if i + 1 < n else a[0]
        e_c, e_u = (unet(x, torch.tensor([float(t)]), c).sample for c in (cond, uncond))
        e = e_u + scale / 12.5 * (e_c - e_u)
        x = a_prev.sqrt() * (x - (1 - a_t).sqrt() * e) / a_t.sqrt() + (1 - a_prev).sqrt() * e_u
    sigmas = make_sigmas("DDIM CFG++", "Automatic", n, schedule)
    c = Conditioning(cond, uncond)
    ours = SAMPLERS["DDIM CFG++"].function(lambda x, s: setup["denoiser"](x, s, c, scale / 12.5, True),
                                           unit * (1 + sigmas[0] ** 2) ** 0.5, sigmas)
    assert close(ours / (1 + sigmas[-1] ** 2) ** 0.5, x) <= 1e-4


@pytest.mark.parametrize("steps", [1, 2, 4, 8])
def test_sgm_uniform_is_the_trailing_grid_turbo_and_lightning_were_made_for(steps):
    """Turbo, Lightning and Hyper take SGM Uniform: A1111's and ComfyUI's timesteps linspace(999, 0, n + 1)[:-1]
    (999, 749.25, 499.5, 249.75 for 4 steps); diffusers' "trailing" spacing rounds them down to whole steps
    (999, 749, 499, 249). The first sigma is the same and the others within 1 %, and the ancestral sampler that
    diffusers' SDXL-Turbo recipe uses steps through the same levels."""
    ours = make_sigmas("Euler a", "SGM Uniform", steps, DiscreteSchedule())
    for cls in (diffusers.EulerDiscreteScheduler, diffusers.EulerAncestralDiscreteScheduler):
        scheduler = cls(**SD_SCHEDULER, timestep_spacing="trailing")
        scheduler.set_timesteps(steps)
        reference = scheduler.sigmas.float()
        assert len(ours) == len(reference) == steps + 1 and ours[-1] == reference[-1] == 0
        torch.testing.assert_close(ours[0], reference[0], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ours[:-1], reference[:-1], rtol=1e-2, atol=0)
