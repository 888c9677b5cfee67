"""An SDXL-architecture checkpoint and refiner (slimmed, random weights, SGM single files as A1111 users have them)
in models/Stable-diffusion: picked in Models & Settings in a real headless Chromium, the base makes a picture on
txt2img, and the Refiner accordion (and the API's refiner fields) hand the run over to the refiner."""
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from engine import GenerationRequest
from tests.browser import MODELS, RunningApp, page_on_tab, wait_until
from tests.test_api import call, picture
from tests.test_browser import saved, set_number, wait_done
from tests.test_sdxl_pipeline import slim_refiner_file, slim_sdxl_file

playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (requirements-dev.txt)")
NAME, REFINER = "sdxl-slim.safetensors", "sdxl-refiner-slim.safetensors"
PROMPT = "a lighthouse on a cliff at dusk, oil painting"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("sdxl-browser")
    models = root / "models"
    shutil.copytree(MODELS / "Stable-diffusion" / "starter", models / "Stable-diffusion" / "starter")
    slim_sdxl_file(models / "Stable-diffusion" / NAME)
    slim_refiner_file(models / "Stable-diffusion" / REFINER)
    running = RunningApp(root / "outputs", root / "settings.json", models=models, api=True)
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
        page.fill("#txt2img_prompt textarea", PROMPT)
        page.click("#txt2img_generate")
        wait_done(page, "txt2img")
        info = page.locator("#txt2img_info textarea").input_value()
    assert "Model: sdxl-slim" in info and "Size: 64x64" in info and "Seed: 99" in info
    picture = saved(app, "txt2img")[-1]
    expected = app.state.generate(GenerationRequest(prompt=PROMPT, seed=99,
                                                    steps=4, width=64, height=64))
    assert np.array_equal(np.asarray(Image.open(picture).convert("RGB")), np.asarray(expected.images[0]))


def test_the_refiner_accordion_hands_the_run_over(app):
    """Runs after the test above, with the SDXL base loaded."""
    with page_on_tab(app, "txt2img") as page:
        set_number(page, "txt2img_width", 64)
        set_number(page, "txt2img_height", 64)
        set_number(page, "txt2img_steps", 5)
        set_number(page, "txt2img_seed", 7)
        page.fill("#txt2img_prompt textarea", PROMPT)
        page.click("#txt2img_refiner")
        page.check("#txt2img_enable_refiner input")
        page.click("#txt2img_generate")
        wait_until(lambda: "refiner's checkpoint" in page.inner_text("body"), 20, message="the missing-refiner error")
        page.locator("#txt2img_refiner_checkpoint input").click()
        page.get_by_role("option", name=REFINER, exact=True).click()
        set_number(page, "txt2img_refiner_switch_at", 0.6)
        page.click("#txt2img_generate")
        wait_done(page, "txt2img")
        info = page.locator("#txt2img_info textarea").input_value()
    assert "Model: sdxl-slim" in info and "Refiner: sdxl-refiner-slim [" in info and "Refiner switch at: 0.6" in info
    request = GenerationRequest(prompt=PROMPT, seed=7, steps=5, width=64, height=64, refiner_switch_at=0.6)
    expected = app.state.generate(request, refiner=REFINER)
    assert np.array_equal(np.asarray(Image.open(saved(app, "txt2img")[-1]).convert("RGB")),
                          np.asarray(expected.images[0]))
    assert not np.array_equal(np.asarray(expected.images[0]), np.asarray(app.state.generate(request).images[0]))


def test_the_api_takes_refiner_checkpoint_and_switch_at(app):
    body = dict(prompt=PROMPT, seed=7, steps=5, width=64, height=64, sampler_name="Euler",
                refiner_checkpoint="sdxl-refiner-slim [0000000000]", refiner_switch_at=0.6)
    status, answer = call(app, "/sdapi/v1/txt2img", body)
    assert status == 200, answer
    info = json.loads(answer["info"])
    assert info["warnings"] == [] and "Refiner: sdxl-refiner-slim [" in info["infotexts"][0]
    expected = app.state.generate(GenerationRequest(prompt=PROMPT, seed=7, steps=5, width=64, height=64,
                                                    sampler="Euler", refiner_switch_at=0.6), refiner=REFINER)
    assert np.array_equal(np.asarray(picture(answer["images"][0]).convert("RGB")), np.asarray(expected.images[0]))
    status, answer = call(app, "/sdapi/v1/txt2img", {**body, "refiner_checkpoint": "no-such-refiner"})
    assert status == 422 and answer["detail"].startswith("refiner_checkpoint: no checkpoint 'no-such-refiner'")
    status, answer = call(app, "/sdapi/v1/txt2img", {**body, "refiner_switch_at": 1.5})
    assert status == 422 and "switch point" in answer["detail"]
