"""ControlNet in generations: several units against diffusers' multi-ControlNet pipeline (SD1.5 size, random
weights), and A1111's unit controls: guidance start/end, control modes, guess mode."""
import diffusers
import numpy as np
import pytest
import torch
from PIL import Image

from engine import GenerationRequest, InvalidRequestError
from engine.control import ControlUnit
from engine.models.controlnet import ControlNetConfig, ControlNetModel
from engine.sampling import make_sigmas
from tests.test_controlnet_parity import reference_controlnet
from tests.test_models_parity import engine_twin
from tests.test_pipeline_diffusers import (NEGATIVE, PROMPT, SD_SCHEDULER, SEED, SIZE, STEPS, assert_images_agree,
                                           generators, models, reference)  # noqa: F401  (models: a fixture)


@pytest.fixture(scope="module")
def controlnets():
    refs = [reference_controlnet(seed=s, cross_attention_dim=768) for s in (1, 2)]
    for ref in refs:      # gentle residuals, so the random UNet's picture stays in range
        with torch.no_grad():
            for conv in [*ref.controlnet_down_blocks, ref.controlnet_mid_block]:
                conv.weight.mul_(0.2)
    return refs, [engine_twin(ControlNetModel, ControlNetConfig.from_dict(dict(r.config)), r) for r in refs]


def control_maps():
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)) for _ in range(2)]


def test_two_units_match_diffusers_multi_controlnet_pipeline(models, controlnets):
    refs, ours = controlnets
    maps = control_maps()
    units = [ControlUnit(ours[0], maps[0], weight=0.8, infotext="Module: none, Model: first, Weight: 0.8"),
             ControlUnit(ours[1], maps[1], weight=0.5)]
    req = GenerationRequest(prompt=PROMPT, negative_prompt=NEGATIVE, sampler="Euler", steps=STEPS, cfg_scale=7,
                            width=SIZE, height=SIZE, seed=SEED, control_units=units)
    engine = models["engine"]
    result = engine.generate(req)
    plain = engine.generate(GenerationRequest(**{**vars(req), "control_units": []}))
    sigmas = make_sigmas("Euler", "Automatic", STEPS, engine.schedule)
    scheduler = diffusers.EulerDiscreteScheduler(**SD_SCHEDULER, timestep_spacing="linspace")
    pipe = diffusers.StableDiffusionControlNetPipeline(
        vae=models["vae"], text_encoder=models["clip"], tokenizer=reference(models, diffusers.StableDiffusionPipeline,
                                                                            scheduler).tokenizer,
        unet=models["unet"], controlnet=diffusers.MultiControlNetModel(refs), scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    ref = pipe(PROMPT, image=maps, negative_prompt=NEGATIVE, sigmas=sigmas.tolist(), guidance_scale=7, height=SIZE,
               width=SIZE, controlnet_conditioning_scale=[0.8, 0.5], generator=generators([SEED]),
               output_type="np").images
    assert_images_agree(result.images, ref)
    assert np.abs(np.asarray(result.images[0], np.int16) - np.asarray(plain.images[0], np.int16)).max() > 8
    assert 'ControlNet 0: "Module: none, Model: first, Weight: 0.8"' in result.infotexts[0]
    assert "ControlNet 1" not in result.infotexts[0]            # a unit without a description is left out


class CountingControlNet(torch.nn.Module):
    """A stand-in that records each call and returns residuals of ones (SD1.5 shapes are not needed)."""

    def __init__(self, model: ControlNetModel, pooled=False):
        super().__init__()
        self.model, self.calls = model, []
        self.config = ControlNetConfig(model.config.unet, global_pool_conditions=pooled)

    @property
    def dtype(self):
        return torch.float32

    def forward(self, x, t, context, hint):
        self.calls.append(float(t[0]))
        down, mid = self.model(x, t, context, hint)
        return [torch.ones_like(d) for d in down], torch.ones_like(mid)


def residual_scales(unit, batch_rows):
    from engine.control import Control
    control = Control([unit], SIZE, SIZE, torch.tensor([3.0, 2.0, 1.0, 0.0]), torch.device("cpu"))
    x = torch.zeros(batch_rows, 4, SIZE // 8, SIZE // 8)
    is_cond = torch.tensor([1.0, 0.0][:batch_rows])
    down, mid = control(x, torch.tensor([3.0] * batch_rows), torch.tensor([900.0] * batch_rows),
                        torch.zeros(batch_rows, 2, 768), is_cond)
    return [[float(r[row].flatten()[0]) for r in [*down, mid]] for row in range(batch_rows)]


def test_control_modes_scale_residuals_as_a1111_and_guess_mode_as_diffusers(controlnets):
    model = controlnets[1][0]
    image = control_maps()[0]
    balanced = residual_scales(ControlUnit(CountingControlNet(model), image, weight=0.9), 2)
    assert balanced[0] == pytest.approx([0.9] * 13) and balanced[1] == pytest.approx([0.9] * 13)
    prompt = residual_scales(ControlUnit(CountingControlNet(model), image, weight=1.0,
                                         control_mode="My prompt is more important"), 2)
    assert prompt[0] == pytest.approx([0.825 ** (12 - i) for i in range(13)]) and prompt[1] == prompt[0]
    strong = residual_scales(ControlUnit(CountingControlNet(model), image, weight=1.0,
                                         control_mode="ControlNet is more important"), 2)
    assert strong[0] == pytest.approx(prompt[0]) and strong[1] == [0.0] * 13     # negative prompt: no control
    guess = residual_scales(ControlUnit(CountingControlNet(model), image, weight=0.5, guess_mode=True), 2)
    assert guess[0] == pytest.approx((torch.logspace(-1, 0, 13) * 0.5).tolist()) and guess[1] == [0.0] * 13
    shuffle = residual_scales(ControlUnit(CountingControlNet(model, pooled=True), image), 2)
    assert shuffle[0] == pytest.approx([1.0] * 13) and shuffle[1] == [0.0] * 13


def test_guidance_start_and_end_follow_the_step_fraction(models, controlnets):
    counting = CountingControlNet(controlnets[1][0])
    unit = ControlUnit(counting, control_maps()[0], guidance_start=0.3, guidance_end=0.6)
    steps = 10
    models["engine"].generate(GenerationRequest(prompt=PROMPT, sampler="Euler", steps=steps, cfg_scale=1,
                                                width=SIZE, height=SIZE, seed=1, control_units=[unit]))
    sigmas = make_sigmas("Euler", "Automatic", steps, models["engine"].schedule)
    timesteps = [float(models["engine"].schedule.sigma_to_t(s)) for s in sigmas[:-1]]
    active = [i for i, t in enumerate(timesteps) if any(abs(t - c) < 1e-3 for c in counting.calls)]
    assert active == [3, 4, 5, 6]          # A1111: active while 0.3 <= step / 10 <= 0.6


@pytest.mark.parametrize("field,value,message", [("weight", 3, "weight"), ("guidance_start", 0.8, "start"),
                                                 ("control_mode", "Loud", "control mode"), ("image", None, "image")])
def test_bad_units_say_what_is_wrong(models, controlnets, field, value, message):
    unit = ControlUnit(controlnets[1][0], control_maps()[0], guidance_end=0.5)
    setattr(unit, field, value)
    with pytest.raises(InvalidRequestError, match=message):
        models["engine"].generate(GenerationRequest(prompt="x", width=SIZE, height=SIZE, control_units=[unit]))
