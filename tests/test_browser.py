"""The web UI in a real headless Chromium: generate, interrupt, img2img, inpaint, PNG Info, the queue."""
import datetime

import numpy as np
import pytest
from PIL import Image

from engine import GenerationRequest
from tests.browser import RunningApp, launch_chromium, upload_to_canvas, wait_until
from ui.outputs import save_image

playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (requirements-dev.txt)")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("app")
    running = RunningApp(root / "outputs", root / "settings.json")
    yield running
    running.close()


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        chromium = launch_chromium(p)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, app):
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(app.url)
    page.wait_for_selector("#page_ready .ready", state="attached")
    yield page
    page.close()


def open_tab(page, name):
    page.get_by_role("tab", name=name, exact=True).first.click()


def set_number(page, elem_id, value):
    field = page.locator(f"#{elem_id} input[type=number]").first
    field.fill(str(value))
    field.press("Tab")


def wait_done(page, tab, timeout=120):
    return wait_until(lambda: "picture(s)" in page.inner_text(f"#{tab}_progress"), timeout,
                      message=f"{tab} to finish")


def saved(app, tab):
    folder = app.studio.outdir / f"{tab}-images" / datetime.date.today().isoformat()
    return sorted(folder.glob("*.png")) if folder.is_dir() else []


def test_txt2img_generate_gallery_saved_infotext_and_send_to(page, app):
    assert page.locator("#txt2img_width input[type=number]").input_value() == "64"   # the starter's native size
    prompt = "a yellow star at the top on a green background"
    page.fill("#txt2img_prompt textarea", prompt)
    set_number(page, "txt2img_seed", 1234)
    set_number(page, "txt2img_steps", 12)
    before = saved(app, "txt2img")
    page.click("#txt2img_generate")
    wait_done(page, "txt2img")
    assert page.locator("#txt2img_gallery img").count() >= 1
    info = page.locator("#txt2img_info textarea").input_value()
    assert info.startswith(prompt + "\n") and "Steps: 12" in info and "Seed: 1234" in info
    assert "Model: starter" in info
    new = [p for p in saved(app, "txt2img") if p not in before]
    assert [p.name for p in new] == [f"{len(before):05d}-1234.png"]
    stored = Image.open(new[0])
    assert stored.info["parameters"] == info
    expected = app.state.generate(GenerationRequest(prompt=prompt, seed=1234, steps=12, width=64, height=64))
    assert np.array_equal(np.asarray(stored.convert("RGB")), np.asarray(expected.images[0]))

    page.click("#txt2img_send_to_img2img")
    wait_until(lambda: page.locator("#img2img_image img").count() > 0, 20, message="the picture in img2img")
    assert page.locator("#img2img_prompt textarea").input_value() == prompt
    open_tab(page, "txt2img")
    page.click("#txt2img_send_to_inpaint")
    page.wait_for_timeout(2000)
    page.click("#img2img_generate")                 # the server has the picture: it asks only for a mask
    page.get_by_text("Paint over the area to repaint first").first.wait_for(timeout=20000)


def test_interrupt_stops_a_long_run_and_leaves_the_app_ready(page, app):
    set_number(page, "txt2img_steps", 150)
    set_number(page, "txt2img_batch_count", 40)
    page.click("#txt2img_generate")
    wait_until(lambda: app.studio.jobs.current is not None and app.studio.jobs.current.steps_done >= 3, 60,
               message="the run to start")
    job = app.studio.jobs.current
    wait_until(lambda: page.locator("#txt2img_preview img").count() > 0, 30, message="a live preview")
    assert "Step " in page.inner_text("#txt2img_progress") and "ETA" in page.inner_text("#txt2img_progress")
    page.click("#txt2img_interrupt")
    wait_done(page, "txt2img", timeout=30)
    assert "Interrupted" in page.inner_text("#txt2img_progress")
    assert job.finished and job.steps_done < 150          # stopped inside the first of 40 batches
    assert page.locator("#txt2img_gallery img").count() == 1

    set_number(page, "txt2img_steps", 5)
    set_number(page, "txt2img_batch_count", 1)
    page.click("#txt2img_generate")
    wait_until(lambda: "Interrupted" not in page.inner_text("#txt2img_progress")
               and "picture(s)" in page.inner_text("#txt2img_progress"), 60, message="a normal run after it")


@pytest.fixture(scope="module")
def source_png(tmp_path_factory):
    path = tmp_path_factory.mktemp("pictures") / "source.png"
    picture = np.zeros((64, 64, 3), np.uint8)
    picture[:] = (40, 80, 220)
    picture[20:44, 20:44] = (220, 30, 30)
    Image.fromarray(picture).save(path)
    return path


def test_img2img_with_an_uploaded_picture(page, app, source_png):
    open_tab(page, "img2img")
    page.set_input_files("#img2img_image input[type=file]", str(source_png))
    wait_until(lambda: page.locator("#img2img_image img").count() > 0, 20, message="the upload")
    page.fill("#img2img_prompt textarea", "a red square in the center on a blue background")
    set_number(page, "img2img_strength", 0.5)
    before = saved(app, "img2img")
    page.click("#img2img_generate")
    wait_done(page, "img2img")
    info = page.locator("#img2img_info textarea").input_value()
    assert "Denoising strength: 0.5" in info and "Size: 64x64" in info
    assert len(saved(app, "img2img")) == len(before) + 1


def test_inpaint_with_a_painted_mask_keeps_the_rest(page, app, source_png):
    open_tab(page, "img2img")
    page.get_by_role("tab", name="Inpaint").click()
    upload_to_canvas(page, "img2img_inpaint_image", source_png)
    page.click("#img2img_inpaint_image button[aria-label='Brush']")
    canvas = page.locator("#img2img_inpaint_image canvas").last.bounding_box()
    cx, cy = canvas["x"] + canvas["width"] / 2, canvas["y"] + canvas["height"] / 2
    page.mouse.move(cx - 110, cy - 110)            # a short stroke in the picture's top-left quarter
    page.mouse.down()
    for k in range(10):
        page.mouse.move(cx - 110 + 2 * k, cy - 110 + 2 * k)
    page.mouse.up()
    page.fill("#img2img_prompt textarea", "a green circle in the center on a blue background")
    set_number(page, "img2img_mask_blur", 0)
    before = saved(app, "img2img")
    page.click("#img2img_generate")
    wait_done(page, "img2img")
    assert "Mask blur: 0" in page.locator("#img2img_info textarea").input_value()
    new = [p for p in saved(app, "img2img") if p not in before]
    result = np.asarray(Image.open(new[0]).convert("RGB")).astype(int)
    original = np.asarray(Image.open(source_png).convert("RGB")).astype(int)
    far = (slice(48, 64), slice(48, 64))            # far from the stroke: the original pixels, pasted back
    assert np.array_equal(result[far], original[far])
    assert np.abs(result[:16, :16] - original[:16, :16]).max() > 0      # under the stroke: repainted


def test_png_info_round_trip_to_txt2img(page, app, tmp_path):
    text = ("a blue ring on the left on a white background\nNegative prompt: red\nSteps: 17, Sampler: Euler a, "
            "Schedule type: Karras, CFG scale: 6.5, Seed: 777, Size: 64x64, Model: starter")
    path = save_image(Image.new("RGB", (64, 64), "white"), text, 777, tmp_path, "txt2img")
    open_tab(page, "PNG Info")
    page.set_input_files("#png_info_image input[type=file]", str(path))
    wait_until(lambda: page.locator("#png_info_text textarea").input_value() == text, 20, message="the parameters")
    page.click("#png_info_send_to_txt2img")
    wait_until(lambda: page.locator("#txt2img_prompt textarea").is_visible(), 10, message="txt2img")
    wait_until(lambda: page.locator("#txt2img_prompt textarea").input_value().startswith("a blue ring"), 10,
               message="the prompt")
    assert page.locator("#txt2img_negative textarea").input_value() == "red"
    assert page.locator("#txt2img_steps input[type=number]").input_value() == "17"
    assert page.locator("#txt2img_seed input[type=number]").input_value() == "777"
    assert page.locator("#txt2img_cfg input[type=number]").input_value() == "6.5"
    assert page.locator("#txt2img_sampler input").input_value() == "Euler a"


def test_hires_fix_from_the_accordion_and_back_through_png_info(page, app, tmp_path):
    page.click("#txt2img_hires")                        # the accordion opens
    page.locator("#txt2img_enable_hr input[type=checkbox]").check()
    wait_until(lambda: "to 128x128" in page.inner_text("#txt2img_hr_target"), 10, message="the target size")
    set_number(page, "txt2img_hires_steps", 3)
    set_number(page, "txt2img_denoising_strength", 0.5)
    page.locator("#txt2img_hr_upscaler input").click()
    page.get_by_role("option", name="Lanczos", exact=True).click()
    set_number(page, "txt2img_steps", 4)
    set_number(page, "txt2img_seed", 99)
    before = saved(app, "txt2img")
    page.click("#txt2img_generate")
    wait_done(page, "txt2img")
    new = [p for p in saved(app, "txt2img") if p not in before]
    assert len(new) == 1 and Image.open(new[0]).size == (128, 128)
    info = page.locator("#txt2img_info textarea").input_value()
    assert "Size: 64x64" in info and "Denoising strength: 0.5, Hires upscale: 2, Hires steps: 3, " \
        "Hires upscaler: Lanczos" in info
    page.locator("#txt2img_enable_hr input[type=checkbox]").uncheck()
    text = "a ring\nSteps: 5, Sampler: Euler, Seed: 3, Size: 64x64, Denoising strength: 0.45, Hires resize: 96x128, " \
           "Hires steps: 7, Hires upscaler: Latent (nearest)"
    path = save_image(Image.new("RGB", (96, 128), "white"), text, 3, tmp_path, "txt2img")
    open_tab(page, "PNG Info")
    page.set_input_files("#png_info_image input[type=file]", str(path))
    wait_until(lambda: page.locator("#png_info_text textarea").input_value() == text, 20, message="the parameters")
    page.click("#png_info_send_to_txt2img")
    wait_until(lambda: page.locator("#txt2img_enable_hr input[type=checkbox]").is_checked(), 10,
               message="hires fix to be ticked")
    assert page.locator("#txt2img_hr_upscaler input").input_value() == "Latent (nearest)"
    assert page.locator("#txt2img_hires_steps input[type=number]").input_value() == "7"
    assert page.locator("#txt2img_hr_resize_x input[type=number]").input_value() == "96"
    assert page.locator("#txt2img_denoising_strength input[type=number]").input_value() == "0.45"
    page.locator("#txt2img_enable_hr input[type=checkbox]").uncheck()


def test_a_style_saved_in_settings_is_applied_on_txt2img_and_found_again_by_png_info(page, app, tmp_path):
    open_tab(page, "Models & Settings")
    page.click("#styles_editor")
    page.locator("#style_name input").fill("night")
    page.fill("#style_prompt textarea", "{prompt} at night")
    page.fill("#style_negative textarea", "daylight")
    page.click("#style_save")
    wait_until(lambda: "Saved 'night'" in page.inner_text("#style_note"), 10, message="the style to be saved")
    open_tab(page, "txt2img")
    page.fill("#txt2img_prompt textarea", "a white star")
    page.fill("#txt2img_negative textarea", "")
    page.locator("#txt2img_styles input").click()
    page.get_by_role("option", name="night", exact=True).click()
    set_number(page, "txt2img_steps", 3)
    page.click("#txt2img_generate")
    wait_done(page, "txt2img")
    info = page.locator("#txt2img_info textarea").input_value()
    assert info.startswith("a white star at night\nNegative prompt: daylight\n")
    path = save_image(Image.new("RGB", (64, 64)), info, 1, tmp_path, "txt2img")
    page.reload()
    page.wait_for_selector("#page_ready .ready", state="attached")
    open_tab(page, "PNG Info")
    page.set_input_files("#png_info_image input[type=file]", str(path))
    wait_until(lambda: page.locator("#png_info_text textarea").input_value() == info, 20, message="the parameters")
    page.click("#png_info_send_to_txt2img")
    wait_until(lambda: page.locator("#txt2img_prompt textarea").input_value() == "a white star", 10,
               message="the prompt without the style")
    assert "night" in page.inner_text("#txt2img_styles")


def test_an_xyz_plot_on_txt2img_makes_a_labelled_grid_and_saves_it(page, app):
    page.click("#txt2img_xyz")
    page.locator("#txt2img_xyz_enable input[type=checkbox]").check()
    page.locator("#txt2img_xyz_x_type input").click()
    page.get_by_role("option", name="Steps", exact=True).click()
    page.fill("#txt2img_xyz_x_values textarea", "2-3")
    page.locator("#txt2img_xyz_y_type input").click()
    page.get_by_role("option", name="CFG Scale", exact=True).last.click()   # the Y list (X's stays in the page)
    page.fill("#txt2img_xyz_y_values textarea", "4, 8")
    set_number(page, "txt2img_seed", 21)
    grids = app.studio.outdir / "txt2img-grids"
    before = set(grids.rglob("*.png")) if grids.is_dir() else set()
    page.click("#txt2img_generate")
    wait_done(page, "txt2img")
    new = set(grids.rglob("*.png")) - before
    assert len(new) == 1
    grid = Image.open(new.pop())
    assert grid.width > 2 * 64 and grid.height > 2 * 64                     # 2 x 2 cells and the legend
    page.locator("#txt2img_xyz_enable input[type=checkbox]").uncheck()


def test_the_queue_serves_two_browser_tabs_one_at_a_time(browser, app):
    first, second = browser.new_page(), browser.new_page()
    try:
        for page in (first, second):
            page.goto(app.url)
            page.wait_for_selector("#page_ready .ready", state="attached")
        set_number(first, "txt2img_steps", 60)
        set_number(first, "txt2img_batch_count", 3)
        set_number(second, "txt2img_steps", 10)
        before = len(saved(app, "txt2img"))
        first.click("#txt2img_generate")
        wait_until(lambda: app.studio.jobs.current is not None, 30, message="the first run to start")
        second.click("#txt2img_generate")
        queued = wait_until(lambda: "queue" in second.inner_text("#txt2img_progress").lower()
                            and second.inner_text("#txt2img_progress"), 30, message="the second tab to show its place")
        assert "1/1" in queued or "1/" in queued
        wait_done(first, "txt2img")
        wait_done(second, "txt2img")
        assert "3 picture(s)" in first.inner_text("#txt2img_progress")
        assert "1 picture(s)" in second.inner_text("#txt2img_progress")
        assert len(saved(app, "txt2img")) == before + 4
    finally:
        first.close()
        second.close()


def test_saved_defaults_apply_to_a_freshly_opened_page(browser, app):
    settings = app.studio.settings
    old = settings.default_steps, settings.default_sampler
    settings.default_steps, settings.default_sampler = 33, "Euler a"
    page = browser.new_page()
    try:
        page.goto(app.url)
        page.wait_for_selector("#page_ready .ready", state="attached")
        for tab in ("txt2img", "img2img"):
            open_tab(page, tab)
            assert page.locator(f"#{tab}_steps input[type=number]").input_value() == "33"
            assert page.locator(f"#{tab}_sampler input").input_value() == "Euler a"
    finally:
        settings.default_steps, settings.default_sampler = old
        page.close()
