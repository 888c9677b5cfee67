"""An SDXL-architecture checkpoint (slimmed, random weights, an SGM single file as A1111 users have them) in
models/Stable-diffusion: picked in Models & Settings in a real headless Chromium, it makes a picture on txt2img."""
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from engine import GenerationRequest
from tests.browser import MODELS, RunningApp, page_on_tab, wait_until
from tests.test_browser import saved, set_number, wait_done

playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (requirements-dev.txt)")
NAME = "sdxl-slim.safetensors"


def slim_sdxl_file(path):
    import diffusers
    import transformers

    from tests.reference import sgm_state_dict
    from tests.test_sdxl_pipeline import BIGG, CLIP_L, SDXL_VAE, SLIM_UNET
    torch.manual_seed(0)
    with torch.no_grad():
        parts = (diffusers.UNet2DConditionModel(**SLIM_UNET), diffusers.AutoencoderKL(**SDXL_VAE),
                 transformers.CLIPTextModel(transformers.CLIPTextConfig(**CLIP_L)),
                 transformers.CLIPTextModelWithProjection(transformers.CLIPTextConfig(**BIGG)))
    save_file({k: v.half().contiguous() for k, v in sgm_state_dict(*parts).items()}, path)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("sdxl-browser")
    models = root / "models"
    shutil.copytree(MODELS / "Stable-diffusion" / "starter", models / "Stable-diffusion" / "starter")
    slim_sdxl_file(models / "Stable-diffusion" / NAME)
    running = RunningApp(root / "outputs", root / "settings.json", models=models)
    yield running
    running.close()


def test_an_sdxl_checkpoint_picked_in_settings_makes_a_picture_on_txt2img(app):
    with page_on_tab(app, "Models & Settings") as page:
        page.locator("#settings_checkpoint input").click()
        page.get_by_role("option", name=NAME, exact=True).click()
        page.click("#settings_load")
        wait_until(lambda: "SDXL" in page.inner_text("#settings_status"), 60, message="the SDXL model to load")
        wait_until(lambda: "sdxl-slim: SDXL" in page.inner_text("#model_status"), 10, message="the status line")
        page.get_by_role("tab", name="txt2img", exact=True).first.click()
        width = page.locator("#txt2img_width input[type=number]")
        wait_until(lambda: width.input_value() == "512", 20, message="the SDXL model's native size")
        set_number(page, "txt2img_width", 64)
        set_number(page, "txt2img_height", 64)
        set_number(page, "txt2img_steps", 4)
        set_number(page, "txt2img_seed", 99)
        page.fill("#txt2img_prompt textarea", "a lighthouse on a cliff at dusk, oil painting")
        page.click("#txt2img_generate")
        wait_done(page, "txt2img")
        info = page.locator("#txt2img_info textarea").input_value()
    assert "Model: sdxl-slim" in info and "Size: 64x64" in info and "Seed: 99" in info
    picture = saved(app, "txt2img")[-1]
    expected = app.state.generate(GenerationRequest(prompt="a lighthouse on a cliff at dusk, oil painting", seed=99,
                                                    steps=4, width=64, height=64))
    assert np.array_equal(np.asarray(Image.open(picture).convert("RGB")), np.asarray(expected.images[0]))
