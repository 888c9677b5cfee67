"""What an outside review of the API found, each with the request that showed it: 500s that must be 4xx with a
sentence, unbounded lists and sizes, fields dropped without a word, absolute paths in answers, a VAE name not
looked up in the list, a LoRA link leading out of models/Lora."""
import dataclasses
import json
import os
import shutil
import urllib.error
import urllib.request

import cv2
import pytest
from PIL import Image

from tests.browser import MODELS, RunningApp
from tests.test_api import b64png, call, picture

PICTURE = Image.new("RGB", (64, 64), (200, 30, 30))


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("hardening")
    models = root / "models"
    shutil.copytree(MODELS / "Stable-diffusion" / "starter", models / "Stable-diffusion" / "starter")
    shutil.copytree(MODELS / "ControlNet" / "starter-edges", models / "ControlNet" / "starter-edges")
    shutil.copytree(MODELS / "Stable-diffusion" / "starter" / "vae", models / "VAE" / "starter-vae")
    outside = root / "elsewhere"
    outside.mkdir()
    (outside / "stolen.safetensors").write_bytes(b"not a LoRA of this folder")
    (models / "Lora").mkdir()
    os.symlink(outside / "stolen.safetensors", models / "Lora" / "stolen.safetensors")
    running = RunningApp(root / "outputs", root / "settings.json", api=True, models=models)
    yield running
    running.close()


def unit(**fields):
    return {"alwayson_scripts": {"controlnet": {"args": [{"module": "canny", "model": "starter-edges",
                                                          "image": b64png(PICTURE), **fields}]}}}


@pytest.mark.parametrize("resolution", [1000000, -100, 0, 63, 2049])
def test_detect_with_a_resolution_out_of_range_uses_the_default_and_says_so(app, resolution):
    """As the extension's bound_check_params: out of the slider's range means the slider's default, not an error."""
    status, found = call(app, "/controlnet/detect", {"controlnet_module": "canny", "controlnet_processor_res": resolution,
                                                     "controlnet_input_images": [b64png(PICTURE)]})
    assert status == 200 and found["info"] == "Success"
    assert found["warnings"] == [f"[canny.processor_res] Invalid value({resolution}), using default value 512"]
    assert picture(found["images"][0]).size == (512, 512)


def test_a_units_resolution_or_threshold_out_of_range_means_the_default_as_in_the_extension(app):
    for value in (-100, 1000000):
        status, answer = call(app, "/sdapi/v1/txt2img", {"prompt": "a red circle", "steps": 1,
                                                         **unit(processor_res=value)})
        info = json.loads(answer["info"])
        assert status == 200 and "Processor Res: 512" in info["infotexts"][0]
        assert f"[canny.processor_res] Invalid value({value}), using default value 512" in info["warnings"]
    status, answer = call(app, "/sdapi/v1/txt2img", {"prompt": "a red circle", "steps": 1, **unit(processor_res=-1)})
    assert status == 200 and not json.loads(answer["info"])["warnings"]      # -1 is the extension's "default"


def test_thresholds_and_map_sizes_are_bounded(app):
    status, found = call(app, "/controlnet/detect", {"controlnet_module": "canny", "controlnet_threshold_a": 1e300,
                                                     "controlnet_processor_res": 64,
                                                     "controlnet_input_images": [b64png(PICTURE)]})
    assert status == 200 and found["warnings"] == ["[canny.threshold_a] Invalid value(1e+300), using default value 100"]
    thin = b64png(Image.new("RGB", (4096, 2)))     # its short side scaled to 512: a 1,048,576-pixel-long map
    status, error = call(app, "/controlnet/detect", {"controlnet_module": "canny", "controlnet_input_images": [thin]})
    assert status == 422 and "4096x2" in error["detail"] and "crop the picture" in error["detail"]


def test_an_opencv_allocation_failure_is_the_documented_507(app, monkeypatch):
    def cannot_allocate(*args):
        raise cv2.error("OpenCV(5.0.0) alloc.cpp:73: error: (-4:Insufficient memory) Failed to allocate 3000000000000 "
                        "bytes in function 'OutOfMemoryError'")
    preprocessors = app.studio.annotators.preprocessors
    monkeypatch.setitem(preprocessors, "canny", dataclasses.replace(preprocessors["canny"], run=cannot_allocate))
    status, error = call(app, "/controlnet/detect", {"controlnet_module": "canny",
                                                     "controlnet_input_images": [b64png(PICTURE)]})
    assert status == 507 and error["error"] == "OutOfMemory"
    assert call(app, "/sdapi/v1/progress")[0] == 200


@pytest.mark.parametrize("padding", [-32, -1, 257])
def test_inpaint_only_masked_with_a_full_mask_and_bad_padding_is_a_422(app, padding):
    status, error = call(app, "/sdapi/v1/img2img", {
        "init_images": [b64png(PICTURE)], "mask": b64png(Image.new("L", (64, 64), 255)), "inpaint_full_res": True,
        "inpaint_full_res_padding": padding, "steps": 1})
    assert status == 422 and "padding must be between 0 and 256" in error["detail"], error


def test_a_full_mask_with_padding_zero_still_works(app):
    status, answer = call(app, "/sdapi/v1/img2img", {
        "init_images": [b64png(PICTURE)], "mask": b64png(Image.new("L", (64, 64), 255)), "inpaint_full_res": True,
        "inpaint_full_res_padding": 0, "steps": 1, "denoising_strength": 0.5})
    assert status == 200 and len(answer["images"]) == 1


@pytest.mark.parametrize("path, body, message", [
    ("/sdapi/v1/img2img", {"init_images": [b64png(PICTURE)] * 9}, "init_images"),
    ("/sdapi/v1/txt2img", {"alwayson_scripts": {"controlnet": {"args": [{}] * 11}}}, "at most 10 units"),
    ("/controlnet/detect", {"controlnet_module": "canny", "controlnet_input_images": [b64png(PICTURE)] * 9},
     "controlnet_input_images"),
    ("/sdapi/v1/txt2img", {"script_args": [0] * 65}, "at most 64"),
    ("/sdapi/v1/txt2img", {"script_name": "Loopback"}, "no script 'Loopback'"),
    ("/sdapi/v1/txt2img", {"script_name": "X/Y/Z plot"}, "18 arguments"),
    ("/sdapi/v1/txt2img", {"alwayson_scripts": {"ADetailer": {"args": []}}}, "'ADetailer' not found"),
    ("/sdapi/v1/txt2img", {"eta": 1e308, "sampler_name": "Euler a"}, "eta must be between 0 and 1"),
    ("/sdapi/v1/txt2img", {"s_noise": -1e308, "sampler_name": "Euler a"}, "s_noise"),
])
def test_lists_and_numbers_are_bounded(app, path, body, message):
    status, error = call(app, path, {"steps": 1, **body})
    assert status == 422 and message in error["detail"], error


def test_fields_that_ask_for_what_the_app_does_not_do_are_named_in_the_warnings(app):
    status, answer = call(app, "/sdapi/v1/txt2img", {
        "prompt": "a red circle", "steps": 1, "restore_faces": True, "firstphase_width": 32,
        "styles": ["cinematic"], "override_settings": {"sd_vae": "x", "CLIP_stop_at_last_layers": 1},
        "made_up_field": 3, "s_churn": 0.5})
    warnings = json.loads(answer["info"])["warnings"]
    assert status == 200 and len(warnings) == 6, warnings
    for name in ("restore_faces", "firstphase_width", "styles", "override_settings.sd_vae", "made_up_field",
                 "s_churn"):
        assert any(w.startswith(name + ":") for w in warnings), (name, warnings)
    quiet = {"prompt": "x", "steps": 1, "restore_faces": False, "tiling": False, "enable_hr": False, "hr_scale": 2,
             "styles": [], "seed_resize_from_h": 0, "s_tmax": 0, "override_settings": {}, "script_args": []}
    assert json.loads(call(app, "/sdapi/v1/txt2img", quiet)[1]["info"])["warnings"] == []   # defaults say nothing


def test_answers_show_paths_relative_to_the_models_and_output_folders(app):
    models, outdir = str(app.state.models_dir), str(app.studio.outdir)
    answers = {path: call(app, path)[1] for path in ("/sdapi/v1/sd-models", "/sdapi/v1/sd-vae", "/sdapi/v1/loras",
                                                      "/sdapi/v1/options", "/sdapi/v1/cmd-flags")}
    text = json.dumps(answers)
    assert models not in text and outdir not in text and str(MODELS.parent) not in text
    assert answers["/sdapi/v1/sd-models"][0]["filename"] == "models/Stable-diffusion/starter"
    assert answers["/sdapi/v1/sd-vae"] == [{"model_name": "starter-vae", "filename": "models/VAE/starter-vae"}]
    assert answers["/sdapi/v1/options"]["outdir_samples"] == "outputs"
    status, error = call(app, "/sdapi/v1/txt2img", {"override_settings": {"sd_model_checkpoint": "nope"}})
    assert status == 422 and "models/Stable-diffusion" in error["detail"] and models not in error["detail"]


def test_the_vae_is_looked_up_in_the_vae_list(app):
    for name in ("starter-vae/../starter-vae", "./starter-vae", "../Stable-diffusion/starter/vae"):
        status, error = call(app, "/sdapi/v1/options", {"sd_vae": name})
        assert status == 422 and "not in" in error["detail"], (name, error)
    assert call(app, "/sdapi/v1/options", {"sd_vae": "starter-vae"}) == (200, None)
    assert call(app, "/sdapi/v1/options", {"sd_vae": "Automatic"}) == (200, None)


def test_a_lora_link_leading_out_of_the_lora_folder_is_not_loaded(app):
    assert call(app, "/sdapi/v1/loras")[1] == []
    status, error = call(app, "/sdapi/v1/txt2img", {"prompt": "x <lora:stolen:1>", "steps": 1})
    assert status == 422 and "LoRA 'stolen' not found" in error["detail"]


@pytest.mark.parametrize("options, message", [({"CLIP_stop_at_last_layers": None}, "whole number from 1 to 12"),
                                              ({"CLIP_stop_at_last_layers": 2.5}, "whole number"),
                                              ({"CLIP_stop_at_last_layers": float("inf")}, "whole number"),
                                              ({"samples_save": "yes"}, "true or false")])
def test_options_of_the_wrong_type_are_a_422(app, options, message):
    status, error = call(app, "/sdapi/v1/options", options)
    assert status == 422 and message in error["detail"]


def test_options_it_has_no_such_setting_for_are_answered_with_warnings(app):
    status, answer = call(app, "/sdapi/v1/options", {"samples_save": False, "jpeg_quality": 80})
    assert status == 200 and answer == {"warnings": ["jpeg_quality: stored and answered back; this app does not act "
                                                     "on it"]}
    assert call(app, "/sdapi/v1/options")[1]["jpeg_quality"] == 80


def test_shown_paths_never_give_an_absolute_path(tmp_path):
    from ui.api.shown_paths import ShownPaths
    shown = ShownPaths(tmp_path / "app" / "models", tmp_path / "pictures", tmp_path / "app")
    assert shown.path(tmp_path / "app" / "models" / "Lora" / "a.safetensors") == "models/Lora/a.safetensors"
    assert shown.path(tmp_path / "pictures") == "pictures"
    assert shown.path(tmp_path / "app" / "settings.json") == "settings.json"
    assert shown.path("/somewhere/else/model.ckpt") == "model.ckpt"
    assert shown.text(f"no checkpoint 'x' in {tmp_path}/app/models/Stable-diffusion") == \
        "no checkpoint 'x' in models/Stable-diffusion"


def upload(app, n_bytes: int) -> int:
    boundary = "studio-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"big.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + b"\0" * n_bytes + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(app.url + "gradio_api/upload", data=body,
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


def test_page_uploads_are_capped_at_45_mb(app):
    assert upload(app, 2 ** 20) == 200
    assert upload(app, 46 * 2 ** 20) == 413          # within the body limit, over the upload limit
