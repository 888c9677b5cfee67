"""The ControlNet tab in a real headless Chromium: canny (upload, preview the map, generate) and openpose
(the weight-free BlazePose preprocessor on a photograph; a missing file named; "none" takes a pose picture as it is)."""
import io
import shutil

import numpy as np
import pytest
from PIL import Image

from tests.browser import RunningApp, models_with_test_controlnets, page_on_tab, wait_until
from tests.test_browser import saved, set_number, wait_done

playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (requirements-dev.txt)")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from extensions.annotators import pose_models
    root = tmp_path_factory.mktemp("cn-app")
    models = models_with_test_controlnets(root / "models")
    pose_models.fetch()
    (models / "annotators").mkdir(exist_ok=True)
    for name in pose_models.FILES:
        shutil.copy(pose_models.DEFAULT_FOLDER / name, models / "annotators" / name)
    running = RunningApp(root / "outputs", root / "settings.json", models=models)
    yield running
    running.close()


@pytest.fixture(scope="module")
def page(app):
    with page_on_tab(app, "ControlNet", height=1000) as page:
        yield page


def shown_image(page, selector) -> np.ndarray:
    src = page.locator(f"{selector} img").first.get_attribute("src")
    body = page.request.get(src).body() if not src.startswith("data:") else __import__("base64").b64decode(
        src.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(body)).convert("L"))


def test_canny_tab_previews_the_map_and_generates_with_it(page, app, tmp_path):
    picture = np.full((64, 64, 3), 255, np.uint8)
    picture[16:48, 16:48] = (220, 30, 30)
    Image.fromarray(picture).save(tmp_path / "square.png")
    page.get_by_role("tab", name="canny", exact=True).click()
    page.set_input_files("#cn_canny_image input[type=file]", str(tmp_path / "square.png"))
    wait_until(lambda: page.locator("#cn_canny_image img").count() > 0, 20, message="the upload")
    set_number(page, "cn_canny_steps", 8)
    page.fill("#cn_canny_prompt textarea", "a red square in the center on a white background")
    page.click("#cn_canny_preview_map")
    wait_until(lambda: page.locator("#cn_canny_map img").count() > 0, 30, message="the detected map")
    expected = app.studio.annotators.run("canny", picture, 512)
    shown = shown_image(page, "#cn_canny_map")
    assert np.array_equal(shown, expected)
    assert page.locator("#cn_canny_model input").input_value() == "control_test_canny"
    before = saved(app, "controlnet")
    page.click("#cn_canny_generate")
    wait_done(page, "cn_canny")
    info = page.locator("#cn_canny_info textarea").input_value()
    assert 'ControlNet 0: "Module: canny, Model: control_test_canny, Weight: 1' in info
    assert len(saved(app, "controlnet")) == len(before) + 1


def test_openpose_tab_names_missing_weights_and_takes_a_pose_picture(page, app, tmp_path):
    pose = Image.new("RGB", (64, 64), "black")
    pose.paste((255, 0, 0), (30, 10, 34, 50))
    pose.save(tmp_path / "pose.png")
    page.get_by_role("tab", name="openpose", exact=True).click()
    assert page.locator("#cn_openpose_preprocessor input").input_value() == "none"
    page.locator("#cn_openpose_preprocessor input").click()
    page.get_by_role("option", name="openpose", exact=True).click()
    wait_until(lambda: "body_pose_model.pth" in page.inner_text("#cn_openpose_note"), 10, message="the note")
    assert "annotators" in page.inner_text("#cn_openpose_note")
    page.locator("#cn_openpose_preprocessor input").click()
    page.get_by_role("option", name="none", exact=True).click()
    page.set_input_files("#cn_openpose_image input[type=file]", str(tmp_path / "pose.png"))
    wait_until(lambda: page.locator("#cn_openpose_image img").count() > 0, 20, message="the upload")
    page.click("#cn_openpose_preview_map")
    wait_until(lambda: page.locator("#cn_openpose_map img").count() > 0, 30, message="the map")
    assert np.array_equal(shown_image(page, "#cn_openpose_map"), np.asarray(pose.convert("L")))
    set_number(page, "cn_openpose_steps", 6)
    page.click("#cn_openpose_generate")
    wait_done(page, "cn_openpose")
    assert "Module: none, Model: control_test_openpose" in page.locator("#cn_openpose_info textarea").input_value()


def preview_photo(page, preprocessor: str, path):
    """On the openpose tab: pick the preprocessor, upload the photo, ask for the map."""
    page.get_by_role("tab", name="openpose", exact=True).click()
    page.locator("#cn_openpose_preprocessor input").click()
    page.get_by_role("option", name=preprocessor, exact=True).click()
    page.set_input_files("#cn_openpose_image input[type=file]", str(path))
    wait_until(lambda: page.locator("#cn_openpose_image img").count() > 0, 20, message="the upload")
    page.click("#cn_openpose_preview_map")


def test_openpose_mediapipe_previews_a_photographs_skeleton(page, app, tmp_path):
    from skimage.data import astronaut
    Image.fromarray(astronaut()).save(tmp_path / "astronaut.png")
    preview_photo(page, "openpose_mediapipe", tmp_path / "astronaut.png")
    expected = np.asarray(Image.fromarray(app.studio.annotators.run("openpose_mediapipe", astronaut(), 512)).convert("L"))
    wait_until(lambda: page.locator("#cn_openpose_map img").count() > 0
               and np.array_equal(shown_image(page, "#cn_openpose_map"), expected), 60, message="the skeleton")
    assert expected.any()
    page.locator("#cn_openpose_preprocessor input").click()
    page.get_by_role("option", name="none", exact=True).click()


def test_openpose_full_previews_a_photographs_skeleton_with_hands_and_face(page, app, tmp_path):
    from tests.photos import man_with_his_hands_showing
    photo = man_with_his_hands_showing()
    Image.fromarray(photo).save(tmp_path / "street.png")
    preview_photo(page, "openpose_full", tmp_path / "street.png")
    full = app.studio.annotators.run("openpose_full", photo, 512)
    body = app.studio.annotators.run("openpose_mediapipe", photo, 512)
    expected = np.asarray(Image.fromarray(full).convert("L"))
    wait_until(lambda: page.locator("#cn_openpose_map img").count() > 0
               and np.array_equal(shown_image(page, "#cn_openpose_map"), expected), 60, message="the full skeleton")
    face_dots = (full == 255).all(axis=2).sum()
    hand_dots = (full == (0, 0, 255)).all(axis=2).sum() - (body == (0, 0, 255)).all(axis=2).sum()
    assert face_dots > 500 and hand_dots > 300 and (body > 0).any(axis=2).sum() > 1000, (face_dots, hand_dots)
    page.locator("#cn_openpose_preprocessor input").click()
    page.get_by_role("option", name="none", exact=True).click()


def test_units_of_other_tabs_join_when_marked(page, app):
    """After the tests above: the openpose unit, marked "also use", joins a generation from canny."""
    page.get_by_role("tab", name="openpose", exact=True).click()
    page.locator("#cn_openpose_also_use input").check()
    page.get_by_role("tab", name="canny", exact=True).click()
    before = len(saved(app, "controlnet"))
    page.click("#cn_canny_generate")
    wait_until(lambda: len(saved(app, "controlnet")) > before, 120, message="the combined run")
    info = wait_until(lambda: "ControlNet 1" in (text := page.locator("#cn_canny_info textarea").input_value())
                      and text, 20, message="its parameters")
    assert 'ControlNet 0: "Module: canny, Model: control_test_canny' in info
    assert 'ControlNet 1: "Module: none, Model: control_test_openpose' in info
