"""The Extras tab and A1111's upscaler routes, through a running server and a headless Chromium."""
import base64
import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from tests.browser import MODELS, RunningApp, page_on_tab, wait_until
from tests.test_api import b64png, call
from tests.test_upscalers import picture, write_upscalers

pytest.importorskip("spandrel", reason="pip install -r requirements.txt (spandrel reads upscaler models)")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("extras")
    models = root / "models"
    shutil.copytree(MODELS / "Stable-diffusion" / "starter", models / "Stable-diffusion" / "starter")
    write_upscalers(models)
    running = RunningApp(root / "outputs", root / "settings.json", models=models, api=True)
    yield running
    running.close()


def decoded(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def test_the_upscaler_lists_answer_as_a1111s(app):
    names = [u["name"] for u in call(app, "/sdapi/v1/upscalers")[1]]
    assert names == ["None", "Lanczos", "Nearest", "4x-tiny", "RealESRGAN_x2-compact"]
    listed = {u["name"]: u for u in call(app, "/sdapi/v1/upscalers")[1]}
    assert listed["4x-tiny"]["scale"] == 4 and listed["4x-tiny"]["model_path"] == "models/ESRGAN/4x-tiny.safetensors"
    assert [m["name"] for m in call(app, "/sdapi/v1/latent-upscale-modes")[1]][:2] == ["Latent", "Latent (antialiased)"]
    assert [(m["name"], m["scale"]) for m in call(app, "/sdapi/v1/realesrgan-models")[1]] == [
        ("RealESRGAN_x2-compact", 2)]


def test_extra_single_and_batch_images(app):
    source = picture(size=(40, 28))
    status, answer = call(app, "/sdapi/v1/extra-single-image", {"image": b64png(source), "upscaler_1": "4x-tiny",
                                                                "upscaling_resize": 2})
    assert status == 200 and decoded(answer["image"]).size == (80, 56)
    assert answer["html_info"] == "Postprocess upscale by: 2.0, Postprocess upscaler: 4x-tiny"
    status, answer = call(app, "/sdapi/v1/extra-batch-images", {
        "imageList": [{"data": b64png(source), "name": "a.png"}, {"data": b64png(picture(1)), "name": "b.png"}],
        "resize_mode": 1, "upscaling_resize_w": 64, "upscaling_resize_h": 64, "upscaler_1": "Lanczos",
        "upscaler_2": "RealESRGAN_x2-compact", "extras_upscaler_2_visibility": 0.5})
    assert status == 200 and [decoded(i).size for i in answer["images"]] == [(64, 64)] * 2
    assert "Postprocess upscaler 2: RealESRGAN_x2-compact" in answer["html_info"]
    for wrong, message in [({"upscaler_1": "8x-Nope"}, "no upscaler named '8x-Nope'"),
                           ({"gfpgan_visibility": 0.5}, "no face restoration"), ({"image": "bm90IGEgcGljdHVyZQ=="},
                                                                                   "not a readable")]:
        status, answer = call(app, "/sdapi/v1/extra-single-image", {"image": b64png(source), "upscaler_1": "Lanczos",
                                                                    **wrong})
        assert status == 422 and message in json.dumps(answer), answer


def test_hires_fix_through_the_api_with_a_model_upscaler(app):
    status, answer = call(app, "/sdapi/v1/txt2img", {"prompt": "a red circle", "steps": 2, "enable_hr": True,
                                                     "hr_upscaler": "RealESRGAN_x2-compact", "hr_second_pass_steps": 1})
    assert status == 200 and decoded(answer["images"][0]).size == (128, 128)
    assert "Hires upscaler: RealESRGAN_x2-compact" in json.loads(answer["info"])["infotexts"][0]


def test_the_extras_tab_upscales_a_picture_and_a_folder(app, tmp_path):
    source = tmp_path / "source.png"
    picture(size=(40, 28)).save(source)
    folder = tmp_path / "folder"
    folder.mkdir()
    for i in range(2):
        picture(i, size=(32, 32)).save(folder / f"p{i}.png")
    (folder / "notes.txt").write_text("not a picture")
    with page_on_tab(app, "Extras") as page:
        page.set_input_files("#extras_image input[type=file]", str(source))
        page.locator("#extras_upscaler_1 input").click()
        page.get_by_role("option", name="4x-tiny", exact=True).click()
        field = page.locator("#extras_upscaling_resize input[type=number]")
        field.fill("2")
        field.press("Tab")
        page.click("#extras_generate")
        wait_until(lambda: "1 picture(s)" in page.inner_text("#extras_info"), 60, message="the upscale")
        assert "Postprocess upscaler: 4x-tiny" in page.inner_text("#extras_info")
        saved = sorted((app.studio.outdir / "extras-images").rglob("*.png"))
        assert len(saved) == 1 and Image.open(saved[0]).size == (80, 56)
        assert "Postprocess upscaler: 4x-tiny" in Image.open(saved[0]).info["parameters"]
        page.get_by_role("tab", name="Batch from Folder").click()
        page.set_input_files("#extras_folder input[type=file]", str(folder))
        page.click("#extras_generate")
        wait_until(lambda: "2 picture(s)" in page.inner_text("#extras_info"), 60, message="the folder")
        assert "notes" in page.inner_text("#extras_info")                   # named as skipped
        saved = sorted((app.studio.outdir / "extras-images").rglob("*.png"))
        assert len(saved) == 3 and all(Image.open(p).size == (64, 64) for p in saved[1:])
        assert np.asarray(Image.open(saved[1])).std() > 0
