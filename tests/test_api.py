"""The AUTOMATIC1111-compatible API through a real HTTP server on 127.0.0.1, with payloads shaped like A1111's
documentation examples."""
import base64
import io
import json
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from engine import GenerationRequest
from tests.browser import RunningApp, wait_until

USERS = [("artist", "s3cret")]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    running = RunningApp(root / "outputs", root / "settings.json", api=True)
    yield running
    running.close()


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    root = tmp_path_factory.mktemp("api-auth")
    running = RunningApp(root / "outputs", root / "settings.json", api_users=USERS)
    yield running
    running.close()


def call(app, path, body=None, auth=None, method=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(app.url.rstrip("/") + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw.startswith((b"{", b"[", b"null")) else raw.decode()
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def picture(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def b64png(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_txt2img_as_in_a1111s_example(app):
    payload = {"prompt": "a red circle in the center on a blue background", "negative_prompt": "", "seed": 42,
               "steps": 8, "cfg_scale": 7, "sampler_name": "DPM++ 2M", "scheduler": "Karras", "batch_size": 2,
               "n_iter": 1, "restore_faces": False, "tiling": False, "styles": [], "override_settings": {}}
    status, answer = call(app, "/sdapi/v1/txt2img", payload)
    assert status == 200, answer
    assert set(answer) == {"images", "parameters", "info"}
    info = json.loads(answer["info"])
    assert info["all_seeds"] == [42, 43] and info["seed"] == 42 and info["sd_model_name"] == "starter"
    assert (info["width"], info["height"]) == (64, 64)              # left out: the model's native size
    images = [picture(b) for b in answer["images"]]
    assert [im.size for im in images] == [(64, 64), (64, 64)]
    assert images[0].info["parameters"] == info["infotexts"][0]
    assert "Sampler: DPM++ 2M, Schedule type: Karras" in info["infotexts"][0]
    same = app.state.pipeline.generate(GenerationRequest(prompt=payload["prompt"], seed=42, steps=8, cfg_scale=7,
                                                         sampler="DPM++ 2M", schedule="Karras", width=64, height=64,
                                                         batch_size=2))
    assert np.array_equal(np.asarray(images[0].convert("RGB")), np.asarray(same.images[0]))
    assert answer["parameters"]["prompt"] == payload["prompt"]
    # old-style names ("Euler a", "DPM++ 2M Karras") and sampler_index work as in A1111
    status, answer = call(app, "/sdapi/v1/txt2img", {"prompt": "a star", "steps": 2, "sampler_index": "DPM++ 2M Karras"})
    assert status == 200 and "Sampler: DPM++ 2M, Schedule type: Karras" in json.loads(answer["info"])["infotexts"][0]


def test_lcm_sampler_through_the_same_fields(app):
    status, answer = call(app, "/sdapi/v1/txt2img", {"prompt": "a red star", "sampler_name": "LCM", "steps": 4,
                                                    "cfg_scale": 1.5, "seed": 1})
    assert status == 200 and "Steps: 4, Sampler: LCM, Schedule type: LCM" in json.loads(answer["info"])["infotexts"][0]


def test_img2img_inpainting_keeps_the_unmasked_part(app):
    source = Image.new("RGB", (64, 64), (200, 40, 40))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (32, 0, 64, 64))
    payload = {"init_images": [b64png(source)], "mask": "data:image/png;base64," + b64png(mask), "prompt": "a blue ring",
               "denoising_strength": 0.9, "mask_blur": 0, "inpainting_fill": 1, "inpaint_full_res": False,
               "steps": 6, "seed": 3, "resize_mode": 0, "width": 64, "height": 64}
    status, answer = call(app, "/sdapi/v1/img2img", payload)
    assert status == 200, answer
    out = np.asarray(picture(answer["images"][0]).convert("RGB"), np.int16)
    assert np.array_equal(out[:, :32], np.asarray(source, np.int16)[:, :32])
    assert "init_images" not in answer["parameters"]                 # include_init_images is off
    info = json.loads(answer["info"])
    assert info["denoising_strength"] == 0.9 and "Mask blur: 0" in info["infotexts"][0]


def test_every_a1111_schedule_type_is_taken_and_an_unknown_one_is_automatic_with_a_warning(app):
    listed = call(app, "/sdapi/v1/schedulers")[1]
    assert {"normal", "beta", "kl_optimal", "align_your_steps", "polyexponential", "simple", "uniform"} <= \
        {s["name"] for s in listed}
    _, normal = call(app, "/sdapi/v1/txt2img", {"prompt": "a red circle", "steps": 3, "seed": 3, "scheduler": "normal"})
    assert "Schedule type: Normal" in json.loads(normal["info"])["infotexts"][0]
    _, odd = call(app, "/sdapi/v1/txt2img", {"prompt": "a red circle", "steps": 3, "seed": 3, "scheduler": "bogus",
                                             "sampler_name": "Euler"})
    info = json.loads(odd["info"])
    assert "Schedule type: Uniform" in info["infotexts"][0]                      # Euler's own, as A1111 does
    assert any(w.startswith("scheduler: 'bogus'") for w in info["warnings"])
    _, tiled = call(app, "/sdapi/v1/txt2img", {"prompt": "a red circle", "steps": 2, "tiling": True})
    info = json.loads(tiled["info"])
    assert "Tiling: True" in info["infotexts"][0] and info["warnings"] == []


def test_hires_fix_makes_the_larger_picture_and_says_so(app):
    body = {"prompt": "a red circle", "steps": 3, "seed": 5, "enable_hr": True, "hr_scale": 2, "hr_upscaler": "Lanczos",
            "hr_second_pass_steps": 2, "denoising_strength": 0.5, "hr_sampler_name": "Euler a"}
    status, answer = call(app, "/sdapi/v1/txt2img", body)
    assert status == 200 and picture(answer["images"][0]).size == (128, 128)       # the starter's 64, doubled
    info = json.loads(answer["info"])
    assert info["warnings"] == [] and info["width"] == 64 and info["denoising_strength"] == 0.5
    assert "Size: 64x64" in info["infotexts"][0] and "Hires sampler: Euler a, Hires upscale: 2, Hires steps: 2, " \
        "Hires upscaler: Lanczos" in info["infotexts"][0]                        # A1111's order
    found = call(app, "/sdapi/v1/png-info", {"image": answer["images"][0]})[1]["parameters"]
    assert (found["Hires upscale"], found["Hires steps"], found["Denoising strength"]) == ("2", "2", "0.5")
    status, answer = call(app, "/sdapi/v1/txt2img", {**body, "hr_resize_x": 96, "hr_resize_y": 160,
                                                     "hr_upscaler": "Latent (nearest)"})
    assert status == 200 and picture(answer["images"][0]).size == (96, 160)
    for wrong, message in [({"hr_upscaler": "4x-Nope"}, "no upscaler named '4x-Nope'"),
                           ({"hr_scale": 64}, "hires upscale"), ({"hr_sampler_name": "Quick"}, "hr_sampler_name"),
                           ({"hr_checkpoint_name": "nothing-here"}, "hr_checkpoint_name")]:
        status, answer = call(app, "/sdapi/v1/txt2img", {**body, **wrong})
        assert status == 422 and message in json.dumps(answer), (wrong, answer)


def test_styles_from_styles_csv_are_applied_and_listed(app):
    app.studio.styles.path.write_text('name,prompt,negative_prompt\nbold,"bright colours, {prompt}",dull\n')
    assert call(app, "/sdapi/v1/prompt-styles")[1] == [
        {"name": "bold", "prompt": "bright colours, {prompt}", "negative_prompt": "dull"}]
    _, answer = call(app, "/sdapi/v1/txt2img", {"prompt": "a red circle", "negative_prompt": "blur", "steps": 2,
                                                "styles": ["bold", "missing"]})
    info = json.loads(answer["info"])
    assert info["infotexts"][0].startswith("bright colours, a red circle\nNegative prompt: blur, dull\n")
    assert info["styles"] == ["bold", "missing"] and any(w.startswith("styles: no style named 'missing'")
                                                         for w in info["warnings"])


def test_options_clients_set_are_kept_and_the_samples_format_is_used(app):
    answer = call(app, "/sdapi/v1/options", {"send_seed": False, "eta_noise_seed_delta": 31337,
                                             "samples_format": "jpg"})[1]
    assert answer["warnings"] == ["send_seed: stored and answered back; this app does not act on it"]
    options = call(app, "/sdapi/v1/options")[1]
    assert (options["send_seed"], options["eta_noise_seed_delta"], options["samples_format"]) == (False, 31337, "jpg")
    try:
        before = set((app.studio.outdir / "txt2img-images").rglob("*.jpg"))
        call(app, "/sdapi/v1/txt2img", {"prompt": "a jpeg ring", "steps": 2, "save_images": True})
        new = set((app.studio.outdir / "txt2img-images").rglob("*.jpg")) - before
        assert len(new) == 1
        from ui.png_info import read_parameters
        assert read_parameters(str(new.pop())).startswith("a jpeg ring\nSteps: 2")
        ensd = json.loads(call(app, "/sdapi/v1/txt2img", {"prompt": "a ring", "steps": 3, "seed": 8,
                                                          "sampler_name": "Euler a"})[1]["info"])["infotexts"][0]
        assert "ENSD: 31337" in ensd
    finally:
        call(app, "/sdapi/v1/options", {"samples_format": "png", "eta_noise_seed_delta": 0})
    assert call(app, "/sdapi/v1/options", {"samples_format": "gif"})[0] == 422
    assert call(app, "/sdapi/v1/hypernetworks")[1] == [] and call(app, "/sdapi/v1/face-restorers")[1] == []
    assert call(app, "/sdapi/v1/scripts")[1] == {"txt2img": ["x/y/z plot"], "img2img": ["x/y/z plot", "sd upscale"]}
    assert [s["name"] for s in call(app, "/sdapi/v1/script-info")[1]] == [
        "x/y/z plot", "controlnet", "x/y/z plot", "controlnet", "zero-shot edit"]     # the last: img2img only


def test_a_checkpoint_keeps_its_hash_in_the_list_after_another_is_loaded(app):
    titles = lambda: {m["model_name"]: m["title"] for m in call(app, "/sdapi/v1/sd-models")[1]}  # noqa: E731
    starter = titles()["starter"]
    assert starter.startswith("starter [")
    try:
        assert call(app, "/sdapi/v1/options", {"sd_model_checkpoint": "starter-lcm"})[0] == 200
        listed = titles()
        assert listed["starter"] == starter and listed["starter-lcm"].startswith("starter-lcm [")
    finally:
        call(app, "/sdapi/v1/options", {"sd_model_checkpoint": starter})
    assert call(app, "/sdapi/v1/options")[1]["sd_model_checkpoint"] == starter


def test_embeddings_are_listed_and_used_by_name(app, tmp_path):
    import torch
    width = app.state.pipeline.prompts.towers[0].encoder.config.hidden_size
    torch.save({"string_to_param": {"*": torch.randn(3, width)}, "step": 10}, tmp_path / "bright-look.pt")
    torch.save({"string_to_param": {"*": torch.randn(1, width + 8)}}, tmp_path / "other-family.pt")
    folder, app.state.embeddings.folder = app.state.embeddings.folder, tmp_path
    try:
        listed = call(app, "/sdapi/v1/embeddings")[1]
        assert listed["loaded"] == {"bright-look": {"step": 10, "sd_checkpoint": None, "sd_checkpoint_name": None,
                                                    "shape": width, "vectors": 3}}
        assert list(listed["skipped"]) == ["other-family"]
        _, answer = call(app, "/sdapi/v1/txt2img", {"prompt": "a ring, bright-look", "steps": 2})
        assert "TI hashes: \"bright-look: " in json.loads(answer["info"])["infotexts"][0]
    finally:
        app.state.embeddings.folder = folder


def test_the_xyz_plot_script_as_a1111_takes_it(app):
    args = [4, "2,3", [], 9, "", ["Euler", "Euler a"], 0, "", [], True, True, False, False, False, False, False, 0,
            False]
    status, answer = call(app, "/sdapi/v1/txt2img", {"prompt": "a ring", "seed": 3, "script_name": "X/Y/Z plot",
                                                     "script_args": args, "save_images": True})
    assert status == 200 and len(answer["images"]) == 1 + 4                 # the grid, then the 4 cells
    grid, cells = picture(answer["images"][0]), [picture(b) for b in answer["images"][1:]]
    assert grid.width >= 2 * 64 and grid.height >= 2 * 64 and all(c.size == (64, 64) for c in cells)
    info = json.loads(answer["info"])
    assert info["index_of_first_image"] == 1 and "Steps: 3, Sampler: Euler a" in info["infotexts"][4]
    _, alone = call(app, "/sdapi/v1/txt2img", {"prompt": "a ring", "seed": 3, "steps": 3, "sampler_name": "Euler a"})
    assert np.array_equal(np.asarray(cells[3]), np.asarray(picture(alone["images"][0])))
    assert list((app.studio.outdir / "txt2img-grids").rglob("*.png"))
    for wrong, message in [([99] + args[1:], "axis index 99"), ([35] + args[1:], "not available here"),
                           (args[:5], "18 arguments")]:
        status, answer = call(app, "/sdapi/v1/txt2img", {"prompt": "x", "script_name": "x/y/z plot",
                                                         "script_args": wrong})
        assert status == 422 and message in json.dumps(answer), answer


def test_the_sd_upscale_script_on_img2img(app):
    source = Image.fromarray(np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    body = {"init_images": [b64png(source)], "prompt": "a ring", "steps": 4, "denoising_strength": 0.3,
            "width": 64, "height": 64, "script_name": "SD upscale", "script_args": [None, 16, 1, 2]}
    status, answer = call(app, "/sdapi/v1/img2img", body)
    assert status == 200 and picture(answer["images"][0]).size == (128, 128)
    assert "SD upscale upscaler: Lanczos" in json.loads(answer["info"])["infotexts"][0]
    for wrong, message in [([None, 16, 99, 2], "upscaler index 99"), ([None, 16], "4 arguments")]:
        status, answer = call(app, "/sdapi/v1/img2img", {**body, "script_args": wrong})
        assert status == 422 and message in json.dumps(answer)
    status, answer = call(app, "/sdapi/v1/txt2img", {"prompt": "x", "script_name": "sd upscale",
                                                     "script_args": [None, 16, 1, 2]})
    assert status == 422 and "img2img script" in json.dumps(answer)


def test_zero_shot_colorize_and_super_resolve_as_an_alwayson_script(app):
    from training.scenes import render, scene_for
    scene, text = scene_for(900_002, max_shapes=1)
    truth = render(scene)
    grey = truth.convert("L").convert("RGB")
    base = {"prompt": text, "sampler_name": "LCM", "steps": 2, "cfg_scale": 1.5, "seed": 4, "denoising_strength": 1,
            "override_settings": {"sd_model_checkpoint": "starter-lcm"}}
    status, answer = call(app, "/sdapi/v1/img2img", {**base, "init_images": [b64png(grey)],
                                                     "alwayson_scripts": {"zero-shot edit": {"args": ["colorize"]}}})
    assert status == 200, answer
    out = picture(answer["images"][0]).convert("RGB")
    kept = np.abs(np.asarray(out.convert("L"), np.float32) - np.asarray(grey.convert("L"), np.float32))
    assert kept.mean() < 0.5 and np.asarray(out).std(axis=2).mean() > 20     # the brightness kept, colours made
    assert "Zero-shot: Colorize" in json.loads(answer["info"])["infotexts"][0]
    small = truth.resize((16, 16), Image.BOX)
    status, answer = call(app, "/sdapi/v1/img2img", {**base, "init_images": [b64png(small)], "width": 512,
                                                     "alwayson_scripts": {"Zero-shot edit": {"args": ["super-resolve", 4]}}})
    assert status == 200, answer
    out = picture(answer["images"][0]).convert("RGB")
    assert out.size == (64, 64)                                 # the task decides the size, not width / height
    assert np.abs(np.asarray(out.resize((16, 16), Image.BOX), np.float32) - np.asarray(small, np.float32)).max() <= 1.5
    for where, body, message in [
            ("img2img", {"init_images": [b64png(grey)], "alwayson_scripts": {"zero-shot edit": {"args": ["sharpen"]}}},
             "choose one of: colorize, super-resolve, outpaint"),
            ("img2img", {"init_images": [b64png(small)],
                         "alwayson_scripts": {"zero-shot edit": {"args": ["super-resolve", 3]}}}, "scale must be one of"),
            ("txt2img", {"alwayson_scripts": {"zero-shot edit": {"args": ["colorize"]}}}, "img2img script")]:
        status, answer = call(app, f"/sdapi/v1/{where}", {**base, **body})
        assert status == 422 and message in json.dumps(answer), answer
    status, listed = call(app, "/sdapi/v1/script-info")
    assert any(entry["name"] == "zero-shot edit" and entry["is_img2img"] for entry in listed)


def test_png_info_lists_and_options(app):
    _, answer = call(app, "/sdapi/v1/txt2img", {"prompt": "a green star", "steps": 2, "seed": 7})
    status, found = call(app, "/sdapi/v1/png-info", {"image": answer["images"][0]})
    assert status == 200 and found["parameters"]["Seed"] == "7" and found["info"].startswith("a green star")
    assert "LCM" in [s["name"] for s in call(app, "/sdapi/v1/samplers")[1]]
    assert "Karras" in [s["label"] for s in call(app, "/sdapi/v1/schedulers")[1]]
    models = call(app, "/sdapi/v1/sd-models")[1]
    assert any(m["model_name"] == "starter" and m["title"].startswith("starter [") for m in models)
    for path in ("/sdapi/v1/sd-vae", "/sdapi/v1/loras"):
        status, listed = call(app, path)
        assert status == 200 and isinstance(listed, list)
    assert call(app, "/sdapi/v1/memory")[1]["ram"]["total"] > 0
    for path in ("/sdapi/v1/refresh-checkpoints", "/sdapi/v1/refresh-loras", "/sdapi/v1/skip"):
        assert call(app, path, {})[0] == 200                          # nothing running: nothing to skip
    assert call(app, "/sdapi/v1/cmd-flags")[1]["api"] is True
    options = call(app, "/sdapi/v1/options")[1]
    assert options["sd_model_checkpoint"].startswith("starter [") and options["CLIP_stop_at_last_layers"] == 1
    assert call(app, "/sdapi/v1/options", {"CLIP_stop_at_last_layers": 2})[0] == 200
    _, answer = call(app, "/sdapi/v1/txt2img", {"prompt": "a ring", "steps": 2})
    assert "Clip skip: 2" in json.loads(answer["info"])["infotexts"][0]
    assert call(app, "/sdapi/v1/options", {"CLIP_stop_at_last_layers": 1})[0] == 200
    status, error = call(app, "/sdapi/v1/options", {"sd_model_checkpoint": "nothing-here.safetensors"})
    assert status == 422 and "no checkpoint 'nothing-here.safetensors'" in error["detail"]
    assert call(app, "/sdapi/v1/options", {"sd_model_checkpoint": "starter"})[0] == 200
    status, page = call(app, "/docs")
    assert status == 200 and "/sdapi/v1/txt2img" in page and "denoising_strength" in page


@pytest.mark.parametrize("payload, message", [
    ({"steps": 500}, "steps must be between 1 and 150"),
    ({"sampler_name": "Nope"}, "unknown sampler 'Nope'"),
    ({"width": 100}, "width must be a multiple of 8"),
    ({"prompt": "<lora:missing:1> a cat"}, "LoRA 'missing' not found"),
    ({"steps": "many"}, None),                                         # pydantic: a number was expected
])
def test_bad_input_is_a_422_with_a_reason(app, payload, message):
    status, error = call(app, "/sdapi/v1/txt2img", {"prompt": "x", **payload})
    assert status == 422
    if message:
        assert message in error["detail"]


def test_bad_pictures_are_a_422(app):
    for init in ("not base64 at all!", "http://example.com/cat.png", base64.b64encode(b"GIF89a...").decode()):
        status, error = call(app, "/sdapi/v1/img2img", {"init_images": [init], "prompt": "x", "steps": 2})
        assert status == 422 and "init_images[0]" in error["detail"], (init, error)
    status, error = call(app, "/sdapi/v1/img2img", {"init_images": [], "prompt": "x"})
    assert status == 422 and "needs at least one picture" in error["detail"]


def test_four_clients_three_requests_each_while_progress_follows(app):
    results, seen = [], []

    def client(n):
        for k in range(3):
            status, answer = call(app, "/sdapi/v1/txt2img", {"prompt": f"client {n} picture {k}", "steps": 12,
                                                            "seed": 100 * n + k})
            results.append((status, json.loads(answer["info"])["seed"]))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        status, progress = call(app, "/sdapi/v1/progress")
        assert status == 200
        if progress["state"]["sampling_steps"]:
            seen.append(progress)
    for t in threads:
        t.join()
    assert sorted(results) == sorted((200, 100 * n + k) for n in range(4) for k in range(3))
    assert any(0 < p["progress"] < 1 and p["state"]["sampling_steps"] == 12 for p in seen)
    assert any(p["current_image"] for p in seen)
    assert picture(next(p["current_image"] for p in seen if p["current_image"])).size[0] > 0


def test_interrupt_ends_the_running_job(app):
    answer = {}
    worker = threading.Thread(target=lambda: answer.update(r=call(app, "/sdapi/v1/txt2img", {
        "prompt": "a long one", "steps": 150, "n_iter": 20})))
    worker.start()
    wait_until(lambda: call(app, "/sdapi/v1/progress")[1]["state"]["sampling_step"] > 0, 60, message="a step")
    assert call(app, "/sdapi/v1/interrupt", {})[0] == 200
    worker.join(60)
    status, body = answer["r"]
    info = json.loads(body["info"])
    assert status == 200 and info["interrupted"] and len(body["images"]) == 1


def test_api_auth(guarded):
    assert call(guarded, "/sdapi/v1/samplers")[0] == 401
    assert call(guarded, "/sdapi/v1/samplers", auth=("artist", "wrong"))[0] == 401
    assert call(guarded, "/sdapi/v1/samplers", auth=USERS[0])[0] == 200
    status, _ = call(guarded, "/sdapi/v1/txt2img", {"prompt": "x", "steps": 1}, auth=USERS[0])
    assert status == 200
