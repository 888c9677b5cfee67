"""The API under bad input and load: random and malformed payloads (hypothesis), path traversal, limits,
eight concurrent clients, a failing disk, CORS, and memory over model switches."""
import base64
import io
import json
import re
import shutil
import threading
import urllib.error
import urllib.request

import pytest
from PIL import Image

from tests.browser import MODELS, RunningApp
from tests.test_api import b64png, call

hypothesis = pytest.importorskip("hypothesis", reason="pip install hypothesis (requirements-dev.txt)")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

TRIED = {"requests": 0, "5xx": 0}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("api-reliability")
    models = root / "models"
    shutil.copytree(MODELS / "Stable-diffusion" / "starter", models / "Stable-diffusion" / "starter")
    shutil.copytree(MODELS / "Stable-diffusion" / "starter", models / "Stable-diffusion" / "second")
    running = RunningApp(root / "outputs", root / "settings.json", api=True, models=models)
    yield running
    running.close()


def tiny_png(size=(8, 8)) -> str:
    return b64png(Image.new("RGB", size, (10, 200, 30)))


junk = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                 st.text(max_size=30), st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5),
                                                                                             st.integers(), max_size=2))
pictures = st.one_of(junk, st.just(tiny_png()), st.just("data:image/png;base64," + tiny_png()),
                     st.just(base64.b64encode(b"\x89PNG\r\n\x1a\n broken").decode()), st.just("http://example.com/a.png"))
fields = {   # each field: valid values (cheap to run) mixed with wrong types and out-of-range ones
    "prompt": st.one_of(st.text(max_size=60), junk),
    "negative_prompt": st.one_of(st.text(max_size=20), junk),
    "steps": st.one_of(st.sampled_from([1, 2, 0, -3, 151, 10**9]), junk),
    "width": st.one_of(st.sampled_from([64, 72, 0, 63, 65, 4096, -64]), junk),
    "height": st.one_of(st.sampled_from([64, 0, 100, 2056]), junk),
    "batch_size": st.one_of(st.sampled_from([1, 2, 0, 9]), junk),
    "n_iter": st.one_of(st.sampled_from([1, 0, 101]), junk),
    "cfg_scale": st.one_of(st.sampled_from([1, 7, -1, 31]), junk),
    "seed": st.one_of(st.integers(-2, 2**40), junk),
    "sampler_name": st.one_of(st.sampled_from(["Euler", "LCM", "DPM++ 2M Karras", "nope", ""]), junk),
    "scheduler": st.one_of(st.sampled_from(["karras", "LCM", "sgm_uniform", "bogus"]), junk),
    "denoising_strength": st.one_of(st.sampled_from([0.0, 0.5, 1.0, 1.5, -1]), junk),
    "override_settings": st.one_of(st.sampled_from([{}, {"sd_model_checkpoint": "../../etc/passwd"},
                                                    {"CLIP_stop_at_last_layers": 99}]), junk),
    "alwayson_scripts": st.one_of(st.just({}), st.fixed_dictionaries({"controlnet": st.one_of(
        junk, st.fixed_dictionaries({"args": st.lists(st.fixed_dictionaries(
            {"module": st.sampled_from(["canny", "none", "zzz"]), "model": st.sampled_from(["None", "../x"]),
             "image": pictures}), max_size=2)}))})),
}
img2img_fields = {**fields, "init_images": st.one_of(st.lists(pictures, max_size=2), junk), "mask": pictures,
                  "inpainting_fill": st.one_of(st.integers(-1, 5), junk), "resize_mode": st.one_of(st.integers(-1, 4), junk)}


def payloads(spec):
    return st.fixed_dictionaries({}, optional=spec) | st.one_of(junk, st.binary(max_size=40))


def post(app, path, body):
    raw = body if isinstance(body, bytes) else json.dumps(body, allow_nan=True).encode()
    request = urllib.request.Request(app.url.rstrip("/") + path, data=raw, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck), database=None,
                derandomize=True)


@pytest.mark.parametrize("path, spec", [("/sdapi/v1/txt2img", fields), ("/sdapi/v1/img2img", img2img_fields),
                                        ("/sdapi/v1/png-info", {"image": pictures}),
                                        ("/controlnet/detect", {"controlnet_module": st.sampled_from(
                                            ["canny", "none", "openpose", "zzz"]) | junk,
                                            "controlnet_input_images": st.lists(pictures, max_size=2) | junk,
                                            "controlnet_processor_res": st.integers(-5, 5000) | junk})])
def test_random_and_malformed_payloads_never_get_a_5xx(app, path, spec):
    @FUZZ
    @given(payloads(spec))
    def check(body):
        status = post(app, path, body)
        TRIED["requests"] += 1
        TRIED["5xx"] += status >= 500
        assert status < 500, (path, body, status)

    check()
    assert call(app, "/sdapi/v1/progress")[0] == 200          # still answering


def test_the_fuzzing_sent_enough(app):
    print(f"fuzzing: {TRIED['requests']} requests, {TRIED['5xx']} server errors")
    assert TRIED["requests"] >= 300 and TRIED["5xx"] == 0


@pytest.mark.parametrize("body, message", [
    ({"override_settings": {"sd_model_checkpoint": "../../../etc/passwd"}}, "no checkpoint"),
    ({"override_settings": {"sd_model_checkpoint": "/etc/passwd"}}, "no checkpoint"),
    ({"prompt": "<lora:../../etc/passwd:1> x"}, "not found"),
    ({"alwayson_scripts": {"controlnet": {"args": [{"model": "../Stable-diffusion/starter", "image": tiny_png()}]}}},
     "not found"),
])
def test_names_cannot_leave_their_folders(app, body, message):
    status, error = call(app, "/sdapi/v1/txt2img", {"prompt": "x", "steps": 1, **body})
    assert status == 422 and message in error["detail"], error
    for vae in ("../Stable-diffusion/starter", "/etc/passwd"):
        status, error = call(app, "/sdapi/v1/options", {"sd_vae": vae})
        assert status == 422 and "sd_vae" in error["detail"]


def test_limits(app):
    status, error = call(app, "/sdapi/v1/txt2img", {"prompt": "x" * 10_001, "steps": 1})
    assert status == 422 and "at most 10,000" in error["detail"]
    status, error = call(app, "/sdapi/v1/img2img", {"init_images": [tiny_png((4097, 8))], "steps": 1})
    assert status == 422 and "4097x8" in error["detail"]
    huge = base64.b64encode(b"\0" * (51 * 2**20)).decode()
    status, error = call(app, "/sdapi/v1/png-info", {"image": huge})
    assert status == 422 and "over 50 MB" in error["detail"]
    bomb = io.BytesIO()
    Image.new("1", (4000, 4000)).save(bomb, format="PNG")      # tiny file, 16 M pixels: within the limit
    status, _ = call(app, "/sdapi/v1/png-info", {"image": base64.b64encode(bomb.getvalue()).decode()})
    assert status == 200


def test_eight_clients_five_requests_each_every_picture_saved_once(app):
    answers = []

    def client(n):
        for k in range(5):
            answers.append(call(app, "/sdapi/v1/txt2img", {"prompt": f"client {n} #{k}", "steps": 2,
                                                          "seed": 1000 + 10 * n + k, "save_images": True}))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [status for status, _ in answers] == [200] * 40
    saved = sorted((app.studio.outdir / "txt2img-images").rglob("*.png"))
    seeds = sorted(int(re.search(r"-(\d+)\.png$", p.name).group(1)) for p in saved)
    assert seeds == sorted(1000 + 10 * n + k for n in range(8) for k in range(5))
    for path, seed in zip(saved, (int(re.search(r"-(\d+)\.png$", p.name).group(1)) for p in saved)):
        assert f"Seed: {seed}," in Image.open(path).info["parameters"]


def test_a_failing_disk_loses_nothing(app, monkeypatch):
    import errno

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr("ui.api.routes.save_image", full)
    status, answer = call(app, "/sdapi/v1/txt2img", {"prompt": "x", "steps": 1, "save_images": True})
    info = json.loads(answer["info"])
    assert status == 200 and len(answer["images"]) == 1
    assert info["warnings"] == [f"Could not save to {app.studio.outdir}: No space left on device"]


def test_cors_is_off(app):
    request = urllib.request.Request(app.url.rstrip("/") + "/sdapi/v1/samplers", headers={"Origin": "http://evil.example"})
    with urllib.request.urlopen(request) as response:
        assert response.headers.get("Access-Control-Allow-Origin") is None


def test_ten_model_switches_grow_memory_by_at_most_ten_percent(app):
    def rss():
        return int(re.search(r"VmRSS:\s+(\d+)", open("/proc/self/status").read()).group(1))
    for name in ("second", "starter"):      # warm up: both loaded once
        assert call(app, "/sdapi/v1/options", {"sd_model_checkpoint": name})[0] == 200
    before = rss()
    for i in range(10):
        assert call(app, "/sdapi/v1/options", {"sd_model_checkpoint": ("second", "starter")[i % 2]})[0] == 200
    growth = rss() / before - 1
    print(f"RSS growth over 10 model switches: {growth:+.1%}")
    assert growth <= 0.10
