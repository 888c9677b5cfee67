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
    assert modules["module_detail"]["canny"]["sliders"][1]["value"] == 100
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


# sd-webui-controlnet's API, exactly: its scripts/api.py, external_code.py and tests/web_api/ define these

def test_module_list_has_the_extensions_internal_names_and_with_alias_names_its_labels(app):
    internal = call(app, "/controlnet/module_list?alias_names=false")[1]
    assert call(app, "/controlnet/module_list")[1] == internal                  # the extension's default
    assert {"none", "canny", "depth", "hed", "pidinet", "pidinet_scribble", "lineart", "normal_map", "invert",
            "lineart_standard", "scribble_hed", "openpose", "mlsd", "shuffle"} <= set(internal["module_list"])
    assert not {"depth_midas", "softedge_hed", "normal_midas"} & set(internal["module_list"])
    labels = call(app, "/controlnet/module_list?alias_names=true")[1]
    assert {"depth_midas", "softedge_hed", "softedge_pidinet", "scribble_pidinet", "lineart_realistic", "normal_midas",
            "invert (from white bg & black line)", "lineart_standard (from white bg & black line)"} \
        <= set(labels["module_list"])
    assert set(labels["module_detail"]) == set(labels["module_list"])
    # the sliders as the extension's preprocessor_sliders_config names and ranges them
    detail = internal["module_detail"]
    resolution = {"name": "Preprocessor Resolution", "value": 512, "min": 64, "max": 2048}
    assert detail["canny"] == {"model_free": False, "sliders": [
        resolution, {"name": "Canny Low Threshold", "value": 100, "min": 1, "max": 255},
        {"name": "Canny High Threshold", "value": 200, "min": 1, "max": 255}]}
    assert detail["mlsd"]["sliders"] == [
        resolution, {"name": "MLSD Value Threshold", "value": 0.1, "min": 0.01, "max": 2, "step": 0.01},
        {"name": "MLSD Distance Threshold", "value": 0.1, "min": 0.01, "max": 20, "step": 0.01}]
    assert detail["normal_map"]["sliders"][1] == {"name": "Normal Background Threshold", "value": 0.4, "min": 0,
                                                  "max": 1, "step": 0.01}
    assert detail["threshold"]["sliders"][1] == {"name": "Binarization Threshold", "value": 127, "min": 0, "max": 255}
    assert detail["scribble_xdog"]["sliders"][1] == {"name": "XDoG Threshold", "value": 32, "min": 1, "max": 64}
    assert detail["none"] == {"model_free": False, "sliders": []}
    # every listed name is accepted by /detect, internal or label
    for name in ("invert", "invert (from white bg & black line)", "lineart_standard (from white bg & black line)"):
        status, found = call(app, "/controlnet/detect", {"controlnet_module": name, "controlnet_processor_res": 64,
                                                         "controlnet_input_images": [b64png(drawing())]})
        assert status == 200, (name, found)
    status, error = call(app, "/controlnet/detect", {"controlnet_module": "depth",
                                                     "controlnet_input_images": [b64png(drawing())]})
    assert status == 422 and "depth_midas needs" in error["detail"]       # known by its internal name


def test_control_types_have_the_extensions_names_and_fields(app):
    types = call(app, "/controlnet/control_types")[1]["control_types"]
    assert list(types)[:11] == ["All", "Canny", "Depth", "NormalMap", "OpenPose", "MLSD", "Lineart", "SoftEdge",
                                "Scribble/Sketch", "Segmentation", "Shuffle"]
    assert {"Tile/Blur", "Inpaint", "IP-Adapter", "Reference", "T2I-Adapter"} <= set(types)
    for entry in types.values():
        assert set(entry) == {"module_list", "model_list", "default_option", "default_model"}
        assert entry["module_list"][0] == "none" and entry["model_list"][0] == "None"
        assert entry["default_option"] in entry["module_list"] and entry["default_model"] in entry["model_list"]
    assert types["Canny"]["default_option"] == "canny" and types["Canny"]["default_model"] == "control_test_canny"
    assert "invert (from white bg & black line)" in types["Scribble/Sketch"]["module_list"]
    assert types["OpenPose"]["model_list"] == ["None", "control_test_openpose"]
    assert types["Inpaint"] == {"module_list": ["none"], "model_list": ["None"], "default_option": "none",
                                "default_model": "None"}
    assert types["All"]["default_option"] == "none" and len(types["All"]["model_list"]) == 3


def generate(app, tab: str, units: list, **fields) -> dict:
    body = {"prompt": "a yellow circle in the center on a blue background", "steps": 4, "seed": 5,
            "alwayson_scripts": {"ControlNet": {"args": units}}, **fields}
    status, answer = call(app, f"/sdapi/v1/{tab}", body)
    assert status == 200, answer
    return answer


CANNY = {"module": "canny", "model": "control_test_canny", "processor_res": 64}


def test_the_detected_map_comes_back_after_the_pictures_unless_not_wanted(app):
    answer = generate(app, "txt2img", [{**CANNY, "image": b64png(drawing())}], batch_size=2)
    info = json.loads(answer["info"])
    assert len(answer["images"]) == info["index_of_first_image"] + 2 + 1
    expected = app.studio.annotators.run("canny", np.asarray(drawing()), 64)
    assert np.array_equal(np.asarray(picture(answer["images"][-1]).convert("L")), expected)
    quiet = generate(app, "txt2img", [{**CANNY, "image": b64png(drawing()), "save_detected_map": False}])
    assert len(quiet["images"]) == 1
    two = generate(app, "txt2img", [{**CANNY, "image": b64png(drawing())},
                                    {**CANNY, "module": "none", "image": b64png(drawing())}])
    assert len(two["images"]) == 2                       # module none: the upload is the map, nothing to send back


def test_an_img2img_unit_without_an_image_uses_the_init_image(app):
    init = b64png(drawing())
    fields = {"init_images": [init], "denoising_strength": 0.6}
    implicit = generate(app, "img2img", [CANNY], **fields)
    explicit = generate(app, "img2img", [{**CANNY, "image": init}], **fields)
    assert implicit["images"] == explicit["images"] and len(implicit["images"]) == 2
    status, error = call(app, "/sdapi/v1/txt2img", {"prompt": "x", "steps": 1,
                                                    "alwayson_scripts": {"controlnet": {"args": [CANNY]}}})
    assert status == 422 and "no image" in error["detail"]


@pytest.mark.parametrize("model", [None, "None"])
def test_a_unit_without_a_model_runs_no_controlnet_and_returns_its_map(app, model):
    plain = generate(app, "txt2img", [])
    answer = generate(app, "txt2img", [{**CANNY, "model": model, "image": b64png(drawing())}])
    assert answer["images"][0] == plain["images"][0] and len(answer["images"]) == 2
    assert "ControlNet" not in json.loads(answer["info"])["infotexts"][0]
    expected = app.studio.annotators.run("canny", np.asarray(drawing()), 64)
    assert np.array_equal(np.asarray(picture(answer["images"][1]).convert("L")), expected)
