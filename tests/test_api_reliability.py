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
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

TRIED = {"requests": 0, "5xx": 0}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("api-reliability")
    models = root / "models"
    shutil.copytree(MODELS / "Stable-diffusion" / "starter", models / "Stable-diffusion" / "starter")
    shutil.copytree(MODELS / "Stable-diffusion" / "starter", models / "Stable-diffusion" / "second")
    shutil.copytree(MODELS / "ControlNet" / "starter-edges", models / "ControlNet" / "starter-edges")
    running = RunningApp(root / "outputs", root / "settings.json", api=True, models=models)
    yield running
    running.close()


def tiny_png(size=(8, 8), colour=(10, 200, 30), mode="RGB") -> str:
    return b64png(Image.new(mode, size, colour))


# every number a field may be sent: its whole range, negatives and huge values, NaN and infinities, the edges
# of what the field takes, and plain small values (cheap to run, so most valid requests really generate)
numbers = st.one_of(st.integers(-10, 300), st.integers(-2 ** 70, 2 ** 70), st.sampled_from(
    [0, -1, -32, 1, 8, 63, 64, 2048, 2049, 4096, 2 ** 31, 2 ** 63 - 1, -2 ** 63, 10 ** 30, 1000000, -100]),
    st.floats(allow_nan=True, allow_infinity=True), st.floats(-2, 2))
junk = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=30), st.lists(st.integers(), max_size=3),
                 st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))
pictures = st.one_of(junk, st.just(tiny_png()), st.just("data:image/png;base64," + tiny_png()),
                     st.just(tiny_png((64, 64))), st.just(tiny_png((1, 2048))), st.just(tiny_png((2048, 3))),
                     st.just(base64.b64encode(b"\x89PNG\r\n\x1a\n broken").decode()), st.just("http://example.com/a.png"))
masks = st.one_of(pictures, st.sampled_from([tiny_png((64, 64), 255, "L"), tiny_png((64, 64), 0, "L"),
                                            tiny_png((8, 8), 255, "L"), tiny_png((64, 64), (0, 0, 0, 0), "RGBA")]))
def mutated(base: dict, spec: dict, most: int = 3):
    """`base` (a valid request) with one to `most` of its fields replaced by anything `spec` can send: the
    other fields stay valid, so the request gets as far as the replaced fields let it."""
    names = st.lists(st.sampled_from(sorted(spec)), min_size=1, max_size=most, unique=True)
    return names.flatmap(lambda chosen: st.fixed_dictionaries({n: spec[n] for n in chosen}).map(
        lambda changes: {**base, **changes}))


PICTURE = tiny_png((64, 64))
FULL_MASK = tiny_png((64, 64), 255, "L")
unit_spec = {
    "enabled": st.booleans() | junk, "module": st.sampled_from(["canny", "none", "invert", "zzz", "mlsd_opencv"]) | junk,
    "model": st.sampled_from(["starter-edges", "None", "../x"]) | junk, "image": pictures, "input_image": pictures,
    "weight": numbers | junk, "processor_res": numbers | junk, "threshold_a": numbers | junk,
    "threshold_b": numbers | junk, "guidance_start": numbers | junk, "guidance_end": numbers | junk,
    "guidance": numbers | junk, "pixel_perfect": st.booleans() | junk, "resize_mode": numbers | st.sampled_from(
        ["Just Resize", "Crop and Resize", "Resize and Fill", "bogus"]) | junk,
    "control_mode": numbers | st.sampled_from(["Balanced", "My prompt is more important", "x"]) | junk,
    "guess_mode": st.booleans() | junk}
VALID_UNIT = {"module": "canny", "model": "starter-edges", "image": PICTURE}
units = st.lists(mutated(VALID_UNIT, unit_spec, most=2) | st.just(VALID_UNIT), min_size=1, max_size=12)
scripts = st.one_of(st.just({}), junk, st.fixed_dictionaries({"controlnet": st.one_of(
    junk, st.fixed_dictionaries({"args": units | junk}))}), st.just({"ADetailer": {"args": []}}))
fields = {   # each field: valid values mixed with wrong types and the whole range of numbers
    "prompt": st.one_of(st.text(max_size=60), junk),
    "negative_prompt": st.one_of(st.text(max_size=20), junk),
    **{name: st.one_of(numbers, junk) for name in (
        "steps", "width", "height", "batch_size", "n_iter", "cfg_scale", "seed", "subseed", "subseed_strength",
        "eta", "s_noise", "denoising_strength", "seed_resize_from_w", "s_churn")},
    "sampler_name": st.one_of(st.sampled_from(["Euler", "Euler a", "LCM", "DPM++ 2M Karras", "DDIM", "nope", ""]),
                              junk),
    "scheduler": st.one_of(st.sampled_from(["karras", "LCM", "sgm_uniform", "bogus"]), junk),
    "override_settings": st.one_of(st.sampled_from([{}, {"sd_model_checkpoint": "../../etc/passwd"},
                                                    {"CLIP_stop_at_last_layers": 99}, {"sd_vae": "x"}]), junk),
    "script_name": st.one_of(st.none(), st.just("X/Y/Z plot"), junk),
    "script_args": st.one_of(st.lists(st.integers(), max_size=70), junk),
    "styles": st.one_of(st.none(), st.lists(st.text(max_size=5), max_size=3), junk),
    "alwayson_scripts": scripts,
    "enable_hr": st.booleans() | junk,
    **{name: st.one_of(numbers, junk) for name in ("hr_scale", "hr_resize_x", "hr_resize_y", "hr_second_pass_steps")},
    "hr_upscaler": st.sampled_from(["Latent", "Lanczos", "None", "nope", ""]) | junk,
    "hr_sampler_name": st.sampled_from(["Euler", "Use same sampler", "nope"]) | junk,
}
img2img_fields = {**fields, "init_images": st.one_of(st.lists(pictures, max_size=10), junk), "mask": masks,
                  **{name: st.one_of(numbers, junk) for name in (
                      "inpainting_fill", "resize_mode", "mask_blur", "mask_blur_x", "inpaint_full_res_padding",
                      "inpainting_mask_invert")},
                  "inpaint_full_res": st.one_of(st.booleans(), junk)}
edges = st.sampled_from([-2 ** 63, -10 ** 6, -100, -32, -1, 0, 1, 63, 256, 257, 10 ** 6, 2 ** 63 - 1])
inpaint_fields = {   # the mask and padding combinations: valid requests with one to three of these changed
    "mask": masks, "inpaint_full_res": st.booleans() | junk, "alwayson_scripts": scripts,
    **{name: edges | numbers for name in ("inpaint_full_res_padding", "mask_blur", "inpainting_fill",
                                          "inpainting_mask_invert", "resize_mode", "width", "height")}}
detect_fields = {"controlnet_module": st.sampled_from(["canny", "none", "openpose", "invert", "mlsd_opencv", "zzz"])
                 | junk, "controlnet_input_images": st.lists(pictures, max_size=10) | junk,
                 **{name: numbers | junk for name in ("controlnet_processor_res", "controlnet_threshold_a",
                                                      "controlnet_threshold_b")}}
options_fields = {"sd_model_checkpoint": st.sampled_from(["starter", "second", "nope", "../x"]) | junk,
                  "sd_vae": st.sampled_from(["Automatic", "None", "../Stable-diffusion/starter"]) | junk,
                  "CLIP_stop_at_last_layers": numbers | junk, "samples_save": junk}
TXT2IMG = {"prompt": "a red circle", "steps": 2}
IMG2IMG = {**TXT2IMG, "init_images": [PICTURE], "denoising_strength": 0.5}
INPAINT = {**IMG2IMG, "mask": FULL_MASK, "inpaint_full_res": True}
CONTROLNET = {"alwayson_scripts": {"controlnet": {"args": [VALID_UNIT]}}}
ENDPOINTS = {   # path: (valid requests to mutate, what each field may be sent)
    "/sdapi/v1/txt2img": ([TXT2IMG, {**TXT2IMG, **CONTROLNET}], fields),
    "/sdapi/v1/img2img": ([IMG2IMG, {**IMG2IMG, **CONTROLNET}], img2img_fields),
    "inpaint": ([INPAINT, {**INPAINT, **CONTROLNET}], inpaint_fields),
    "/controlnet/detect": ([{"controlnet_module": "canny", "controlnet_input_images": [PICTURE]}], detect_fields),
    "/sdapi/v1/png-info": ([{"image": PICTURE}], {"image": pictures}),
    "/sdapi/v1/options": ([{}], options_fields),
}


def payloads(bases: list[dict], spec: dict, wild: bool = True):
    """Valid requests with a few fields changed; `wild`: also any mix of the fields, and bodies that are not
    even JSON objects."""
    changed = [mutated(base, spec) for base in bases]
    return st.one_of(*changed, st.fixed_dictionaries({}, optional=spec), junk, st.binary(max_size=40)) if wild \
        else st.one_of(*changed)


def work(body) -> float:
    """About how many 64x64 model steps a body asks for, were it valid (the fuzz keeps to cheap ones)."""
    if not isinstance(body, dict):
        return 0
    def size(name, default):
        value = body.get(name, default)
        return value if isinstance(value, int) and not isinstance(value, bool) and 1 <= value else default
    units = body.get("alwayson_scripts", {}).get("controlnet", {}) if isinstance(body.get("alwayson_scripts"), dict) else {}
    count = len(units.get("args", [])) if isinstance(units, dict) and isinstance(units.get("args"), list) else 0
    return (size("steps", 50) * size("batch_size", 1) * size("n_iter", 1) * (1 + count)
            * size("width", 64) * size("height", 64) / 4096)


def post(app, path, body):
    raw = body if isinstance(body, bytes) else json.dumps(body, allow_nan=True).encode()
    request = urllib.request.Request(app.url.rstrip("/") + path, data=raw, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), database=None,
                derandomize=True)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_random_and_malformed_payloads_never_get_a_5xx(app, endpoint):
    bases, spec = ENDPOINTS[endpoint]
    path = "/sdapi/v1/img2img" if endpoint == "inpaint" else endpoint

    @FUZZ
    @given(payloads(bases, spec, wild=endpoint != "inpaint"))
    def check(body):
        assume(work(body) <= 400)
        status = post(app, path, body)
        TRIED["requests"] += 1
        TRIED["5xx"] += status >= 500
        assert status < 500, (path, body, status)

    check()
    assert call(app, "/sdapi/v1/progress")[0] == 200          # still answering


def test_the_fuzzing_sent_enough(app):
    print(f"fuzzing: {TRIED['requests']} requests, {TRIED['5xx']} server errors")
    assert TRIED["requests"] >= 500 and TRIED["5xx"] == 0


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
    huge = base64.b64encode(b"\0" * (46 * 2**20)).decode()          # 61 MB of base64: within the body limit
    status, error = call(app, "/sdapi/v1/png-info", {"image": huge})
    assert status == 422 and "over 45 MB" in error["detail"]
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
    monkeypatch.setattr("ui.api.routes.save_result", full)
    status, answer = call(app, "/sdapi/v1/txt2img", {"prompt": "x", "steps": 1, "save_images": True})
    info = json.loads(answer["info"])
    assert status == 200 and len(answer["images"]) == 1
    assert info["warnings"] == ["Could not save to outputs: No space left on device"]    # no absolute path


def test_cors_is_off(app):
    request = urllib.request.Request(app.url.rstrip("/") + "/sdapi/v1/samplers", headers={"Origin": "http://evil.example"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request)
    assert refused.value.code == 403 and refused.value.headers.get("Access-Control-Allow-Origin") is None


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
