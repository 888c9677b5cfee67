"""The `webuiapi` client, written for AUTOMATIC1111, used unchanged against this app's --api."""
import shutil

import pytest
from PIL import Image

from tests.browser import RunningApp, models_with_test_controlnets

webuiapi = pytest.importorskip("webuiapi", reason="pip install webuiapi (requirements-dev.txt)")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("api-client")
    models = models_with_test_controlnets(root / "models")
    shutil.copytree(models / "Stable-diffusion" / "starter", models / "Stable-diffusion" / "second")
    running = RunningApp(root / "outputs", root / "settings.json", api=True, models=models)
    yield running
    running.close()


def test_webuiapi_client_unchanged(app):
    api = webuiapi.WebUIApi(host="127.0.0.1", port=app.port, sampler="DPM++ 2M", scheduler="karras", steps=6)
    result = api.txt2img(prompt="a red circle in the center on a blue background", seed=5, width=64, height=64,
                         cfg_scale=7)
    assert result.image.size == (64, 64) and result.info["all_seeds"] == [5]
    assert "Sampler: DPM++ 2M, Schedule type: Karras" in result.info["infotexts"][0]
    again = api.img2img(images=[result.image], prompt="a blue star", denoising_strength=0.6, width=64, height=64,
                        seed=2)
    assert "Denoising strength: 0.6" in again.info["infotexts"][0]
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (0, 0, 32, 64))
    inpainted = api.img2img(images=[result.image], mask_image=mask, inpainting_fill=1, prompt="a ring",
                            denoising_strength=1.0, width=64, height=64, seed=3, mask_blur=0)
    assert list(inpainted.image.convert("RGB").crop((40, 0, 64, 64)).getdata()) == \
        list(result.image.convert("RGB").crop((40, 0, 64, 64)).getdata())
    unit = webuiapi.ControlNetUnit(image=result.image, module="canny", model="control_test_canny", weight=0.8)
    controlled = api.txt2img(prompt="a ring", width=64, height=64, seed=4, controlnet_units=[unit])
    assert "ControlNet 0: \"Module: canny, Model: control_test_canny, Weight: 0.8" in controlled.info["infotexts"][0]
    assert api.png_info(result.image).parameters["Seed"] == "5"
    assert "canny" in api.controlnet_module_list()
    assert "LCM" in api.util_get_sampler_names()
    # switching the model as clients do
    assert sorted(api.util_get_model_names()) == ["second", "starter [" + app.state.pipeline.model_hash + "]"]
    api.util_set_model("second")
    assert app.state.pipeline.name == "second" and api.util_get_current_model().startswith("second")
    assert api.get_progress()["state"]["job_count"] == 0
