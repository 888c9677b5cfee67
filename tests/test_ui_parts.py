"""The UI's plain parts: job progress and ETA, settings on disk, credentials, PNG Info parsing, start-up flags."""
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from ui.jobs import Jobs, format_eta, progress_html
from ui.png_info import form_values, read_parameters, sampler_and_schedule
from ui.refiner import pasted
from ui.settings import Settings, load_settings, save_settings
from webui import credentials

ROOT = Path(__file__).resolve().parents[1]


def test_job_progress_eta_and_one_skip_per_press():
    jobs = Jobs()
    assert jobs.interrupt() == "Nothing is running."
    job = jobs.start("txt2img")
    job.started = time.monotonic() - 10
    job.steps_done, job.total_steps = 5, 20
    assert 29 < job.eta_seconds < 31                     # 2 s a step, 15 steps to go
    html = progress_html(job)
    assert "Step 5/20" in html and "25%" in html and "ETA 30s" in html
    assert format_eta(75) == "ETA 1:15" and format_eta(None) == "ETA --"
    jobs.skip()
    assert job.take_skip() and not job.take_skip()       # consumed by the batch it ended
    jobs.interrupt()
    assert job.should_stop()
    jobs.finish(job)
    assert jobs.current is None and job.finished


def test_settings_round_trip_and_bad_files_fall_back(tmp_path):
    path = tmp_path / "settings.json"
    assert load_settings(path) == Settings()             # absent
    custom = Settings(save_outputs=False, preview_method="Full", preview_every=2, default_sampler="Euler a")
    save_settings(custom, path)
    assert load_settings(path) == custom
    path.write_text("{not json")
    assert load_settings(path) == Settings()
    path.write_text(json.dumps({"default_steps": 999, "unknown": 1}))
    assert load_settings(path) == Settings()             # out of range: defaults, not a crash
    with pytest.raises(ValueError, match="preview method"):
        Settings(preview_method="Sharp").check()


def test_credentials_from_flag_and_file(tmp_path):
    file = tmp_path / "auth.txt"
    file.write_text("ann:secret\nbob:pa:ss\n")
    assert credentials("me:pw,you:x", file) == [("me", "pw"), ("you", "x"), ("ann", "secret"), ("bob", "pa:ss")]
    assert credentials(None, None) == []
    with pytest.raises(SystemExit, match="user:password"):
        credentials("nopassword", None)
    with pytest.raises(SystemExit, match="auth-file"):
        credentials(None, tmp_path / "missing.txt")


def test_png_info_reads_png_and_jpeg_parameters(tmp_path):
    text = "a cat\nNegative prompt: dog\nSteps: 9, Sampler: DPM++ 2M Karras, CFG scale: 5, Seed: 3, Size: 64x128"
    info = PngInfo()
    info.add_text("parameters", text)
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png", pnginfo=info)
    assert read_parameters(str(tmp_path / "a.png")) == text
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + text.encode("utf-16-be")
    Image.new("RGB", (8, 8)).save(tmp_path / "a.jpg", exif=exif)
    assert read_parameters(str(tmp_path / "a.jpg")) == text
    Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
    assert read_parameters(str(tmp_path / "plain.png")) == ""
    (tmp_path / "bad.png").write_bytes(b"not a picture")
    with pytest.raises(Exception, match="Not a readable picture"):
        read_parameters(str(tmp_path / "bad.png"))


def test_old_style_sampler_names_split_into_sampler_and_schedule():
    assert sampler_and_schedule({"Sampler": "DPM++ 2M Karras"}) == ("DPM++ 2M", "Karras")
    assert sampler_and_schedule({"Sampler": "Euler a", "Schedule type": "Exponential"}) == ("Euler a", "Exponential")
    assert sampler_and_schedule({"Sampler": "Made Up"}) == (None, None)
    values = form_values({"Prompt": "p", "Negative prompt": "n", "Steps": "9", "Size-1": "64", "Size-2": "128",
                          "CFG scale": "5", "Seed": "3", "Sampler": "Euler", "Tiling": "True"})
    assert values[:3] == ["p", "n", "Euler"] and values[4:] == [9, 64, 128, 5.0, 3, True]


def run_webui(*flags, timeout=120):
    return subprocess.run([sys.executable, "webui.py", *flags], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_png_info_pastes_the_refiner_by_name_and_switch_point():
    names = ["sdxl/base.safetensors", "sdxl/refiner-1.0.safetensors"]
    fields = {"Refiner": "refiner-1.0 [7440042bbd]", "Refiner switch at": "0.7"}
    assert pasted(fields, names) == [True, "sdxl/refiner-1.0.safetensors", 0.7]
    skip = pasted({}, names)
    assert skip[0] is False
    missing = pasted({"Refiner": "elsewhere [0123456789]"}, names)
    assert missing[0] is False and missing[2] == 0.8


def test_bad_flags_stop_with_a_clear_message(tmp_path):
    done = run_webui("--auth", "nopassword", "--outdir", str(tmp_path))
    assert done.returncode != 0 and "user:password" in done.stderr and "Traceback" not in done.stderr


def start_webui(tmp_path, *flags, until: str):
    """webui.py on a free port with an empty models folder; (process, port, output up to the line `until`)."""
    from tests.browser import free_port
    port = free_port()
    process = subprocess.Popen([sys.executable, "webui.py", "--port", str(port), *flags,
                                "--models-dir", str(tmp_path / "models"), "--outdir", str(tmp_path / "out"),
                                "--settings-file", str(tmp_path / "s.json")],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith(until) or len(lines) > 200:
            break
    return process, port, "".join(lines)


def test_share_offline_listen_and_no_models_still_serve(tmp_path):
    """--share without internet says so and the local app keeps serving; --listen prints the LAN address and
    warns without --auth; an empty models folder still gives a page that says how to add a model."""
    import urllib.request
    process, port, output = start_webui(tmp_path, "--share", "--listen", until="--share:")
    try:
        assert "Warning: --listen without --auth" in output
        assert "Share on your network: http://" in output and f":{port}" in output
        assert "no public link could be made" in output
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30).read().decode()
        assert "Stable Diffusion studio" in page
        config = urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=30).read().decode()
        assert "No checkpoints found" in config
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_auth_guards_the_page_and_the_api(tmp_path):
    import base64
    import http.cookiejar
    import urllib.error
    import urllib.parse
    import urllib.request
    process, port, output = start_webui(tmp_path, "--auth", "ann:secret", "--api", until="API:")
    base = f"http://127.0.0.1:{port}"
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(base + "/config", timeout=30)
        assert refused.value.code == 401
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        wrong = urllib.parse.urlencode({"username": "ann", "password": "guess"}).encode()
        with pytest.raises(urllib.error.HTTPError):
            opener.open(base + "/login", data=wrong, timeout=30)
        right = urllib.parse.urlencode({"username": "ann", "password": "secret"}).encode()
        opener.open(base + "/login", data=right, timeout=30)
        assert "Stable Diffusion studio" in opener.open(base + "/config", timeout=30).read().decode()
        with pytest.raises(urllib.error.HTTPError) as refused:              # --auth covers the API too
            urllib.request.urlopen(base + "/sdapi/v1/samplers", timeout=30)
        assert refused.value.code == 401
        request = urllib.request.Request(base + "/sdapi/v1/samplers",
                                         headers={"Authorization": "Basic " + base64.b64encode(b"ann:secret").decode()})
        assert "DPM++ 2M" in urllib.request.urlopen(request, timeout=30).read().decode()
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_controlnet_models_filtered_by_mode_and_pixel_perfect_resolution():
    import numpy as np
    from ui.controlnet import models_for, pixel_perfect_resolution
    names = ["control_v11p_sd15_canny.pth", "control_v11p_sd15_openpose.pth", "control_sd15_hed.pth",
             "starter-edges", "control_v11e_sd15_shuffle.safetensors"]
    assert models_for("canny", names) == ["control_v11p_sd15_canny.pth", "starter-edges"]
    assert models_for("softedge", names) == ["control_sd15_hed.pth", "starter-edges"]
    assert models_for("openpose", names) == ["control_v11p_sd15_openpose.pth"]
    picture = np.zeros((300, 400, 3), np.uint8)           # A1111: the short side scaled as the picture will be
    assert pixel_perfect_resolution(picture, 512, 512, "Crop and resize") == 512
    assert pixel_perfect_resolution(picture, 512, 512, "Resize and fill") == 384
    assert pixel_perfect_resolution(picture, 768, 512, "Just resize") == 576


def test_consistency_methods_set_their_steps_cfg_and_size():
    """Turbo starts at 1 step, CFG 1 and at most 512x512 (SDXL-Turbo's size, which its weights do not tell; a
    smaller model's size stays); LCM leaves what the page holds."""
    import gradio as gr

    from ui.consistency import method_defaults
    assert method_defaults("Turbo") == (1, 1.0, 512, 512)
    assert method_defaults("Turbo", 1024, 1024) == (1, 1.0, 512, 512)      # an SDXL file opened at 1024
    assert method_defaults("Turbo", 64, 64)[2:] == (64, 64)                 # the starter stays at its size
    assert method_defaults("Lightning / Hyper")[:2] == (4, 1.0)
    from ui.consistency import method_for
    assert method_for("sd_xl_turbo_1.0_fp16") == "Turbo" and method_for("sdxl_lightning_4step") == "Lightning / Hyper"
    assert method_for("Hyper-SD15-8steps") == "Lightning / Hyper" and method_for("LCM_Dreamshaper_v7") == "LCM"
    assert method_for("juggernautXL", "a cat <lora:TCD-SDXL-LoRA:1>") == "TCD"     # the LoRA before the name
    assert method_for("v1-5-pruned", "<lora:lcm-lora-sdv1-5:1> a cat") == "LCM"
    assert method_for("v1-5-pruned", "a cat") is None
    assert method_for("starter-ct") == method_for("my_iCM_model") == "Consistency"   # consistency-trained
    assert method_for("architecture-study") is None and method_for("perfect_v2") is None
    assert all(value == gr.skip() for value in method_defaults("LCM"))
    assert method_defaults("Lightning / Hyper")[2:] == (gr.skip(), gr.skip())


def test_right_after_start_up_the_options_name_the_checkpoint_being_loaded(tmp_path):
    from engine import Device
    from ui.api.options import current_options
    from ui.api.shown_paths import ShownPaths
    from ui.model_state import ModelState
    from ui.settings import Settings
    from ui.studio import Studio
    state = ModelState(tmp_path / "models", Device.cpu_fp32())
    state.loading = "sd_xl_base_1.0.safetensors"          # as load_in_background sets it
    studio = Studio(state, Settings(), tmp_path / "settings.json", tmp_path / "outputs")
    options = current_options(studio, ShownPaths(tmp_path / "models", tmp_path / "outputs"))
    assert options["sd_model_checkpoint"] == "sd_xl_base_1.0.safetensors"
