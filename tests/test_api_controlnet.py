"""ControlNet through the API the way A1111's extension serves it, over real HTTP."""
import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tests.browser import RunningApp, models_with_test_controlnets
from tests.test_api import b64png, call, picture


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("api-controlnet")
    running = RunningApp(root / "outputs", root / "settings.json", api=True,
                         models=models_with_test_controlnets(root / "models"))
    yield running
    running.close()


def drawing() -> Image.Image:
    image = Image.new("RGB", (64, 64), (20, 20, 160))
    ImageDraw.Draw(image).ellipse((16, 16, 48, 48), fill=(230, 200, 30))
    return image


def test_lists_and_detect(app):
    assert call(app, "/controlnet/version")[1] == {"version": 2}
    assert "control_test_canny" in call(app, "/controlnet/model_list")[1]["model_list"]
    modules = call(app, "/controlnet/module_list")[1]
    assert {"none", "canny", "openpose", "shuffle"} <= set(modules["module_list"])
    assert modules["module_detail"]["canny"]["sliders"][0]["value"] == 100
    types = call(app, "/controlnet/control_types")[1]["control_types"]
    assert types["Canny"]["default_model"] == "control_test_canny" and "canny" in types["Canny"]["module_list"]
    status, found = call(app, "/controlnet/detect", {"controlnet_module": "canny", "controlnet_processor_res": 64,
                                                     "controlnet_input_images": [b64png(drawing())],
                                                     "controlnet_threshold_a": 100, "controlnet_threshold_b": 200})
    assert status == 200 and found["info"] == "Success"
    edges = np.asarray(picture(found["images"][0]))
    expected = app.studio.annotators.run("canny", np.asarray(drawing()), 64, 100, 200)
    assert np.array_equal(edges, expected) and set(np.unique(edges)) == {0, 255}


def test_txt2img_with_a_unit_as_the_extension_takes_it(app):
    base = {"prompt": "a yellow circle in the center on a blue background", "steps": 6, "seed": 11}
    plain = call(app, "/sdapi/v1/txt2img", base)[1]
    unit = {"enabled": True, "module": "canny", "model": "control_test_canny [0123abcd]", "weight": 1.2,
            "image": b64png(drawing()), "resize_mode": "Just Resize", "processor_res": 64, "threshold_a": 100,
            "threshold_b": 200, "guidance_start": 0.0, "guidance_end": 0.8, "pixel_perfect": False,
            "control_mode": 1}
    status, answer = call(app, "/sdapi/v1/txt2img", {**base, "alwayson_scripts": {"controlnet": {"args": [unit]}}})
    assert status == 200, answer
    text = json.loads(answer["info"])["infotexts"][0]
    assert ('ControlNet 0: "Module: canny, Model: control_test_canny, Weight: 1.2, Resize Mode: Just Resize, '
            'Processor Res: 64, Guidance Start: 0.0, Guidance End: 0.8, Pixel Perfect: False, '
            'Control Mode: My prompt is more important"') in text
    assert answer["images"][0] != plain["images"][0]
    # deprecated names (input_image, guidance) and a disabled second unit
    old = {"input_image": b64png(drawing()), "module": "none", "model": "control_test_openpose", "guidance": 0.5}
    status, answer = call(app, "/sdapi/v1/txt2img", {**base, "alwayson_scripts": {"ControlNet": {"args": [
        old, {**unit, "enabled": False}]}}})
    text = json.loads(answer["info"])["infotexts"][0]
    assert status == 200 and "Model: control_test_openpose" in text and "Guidance End: 0.5" in text
    assert "ControlNet 1" not in text


@pytest.mark.parametrize("unit, message", [
    ({"module": "sharpen", "model": "control_test_canny"}, "controlnet module 'sharpen' is unknown"),
    ({"module": "canny", "model": "control_v11p_sd15_canny"}, "'control_v11p_sd15_canny' not found"),
    ({"module": "canny", "model": "control_test_canny", "control_mode": 7}, "control_mode"),
    ({"module": "canny", "model": "control_test_canny", "image": None}, "no image"),
])
def test_bad_units_are_a_422(app, unit, message):
    unit = {"image": b64png(drawing()), **unit}
    status, error = call(app, "/sdapi/v1/txt2img", {"prompt": "x", "steps": 2,
                                                    "alwayson_scripts": {"controlnet": {"args": [unit]}}})
    assert status == 422 and message in error["detail"], error
