"""The starter ControlNets as a new user meets them, in a real headless Chromium on the shipped models: a drawing
drawn on the scribble tab's canvas, or uploaded to it, with a prompt that names only colours comes out in the
drawing's shape and place."""
import numpy as np
import pytest
from PIL import Image, ImageDraw

from tests.browser import RunningApp, page_on_tab, wait_until
from tests.test_browser_controlnet import shown_image
from tests.test_browser import saved, set_number
from training.evaluate_adherence import foreground, shape_iou

playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (requirements-dev.txt)")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("starter-cn-app")
    running = RunningApp(root / "outputs", root / "settings.json")
    yield running
    running.close()


@pytest.fixture(scope="module")
def page(app):
    with page_on_tab(app, "ControlNet", height=1000) as page:
        yield page


def preview_until(page, shows, tries: int = 20) -> np.ndarray:
    """Preview the map until `shows(lines)` holds (the canvas takes a second or two to hand a drawing or an
    upload over); the lit pixels of the last map shown."""
    lines = None
    for _ in range(tries):
        page.click("#cn_scribble_preview_map")
        page.wait_for_timeout(1500)
        if page.locator("#cn_scribble_map img").count() > 0:
            lines = shown_image(page, "#cn_scribble_map") > 127
            if shows(lines):
                return lines
    raise AssertionError("the preview never showed the drawing" + ("" if lines is None else f" ({lines.mean():.3f} lit)"))


def generate_on(page, app, mode: str, prompt: str, seed: int = 7) -> Image.Image:
    set_number(page, f"cn_{mode}_steps", 20)
    set_number(page, f"cn_{mode}_seed", seed)
    page.fill(f"#cn_{mode}_prompt textarea", prompt)
    before = saved(app, "controlnet")
    page.click(f"#cn_{mode}_generate")
    after = wait_until(lambda: len(found := saved(app, "controlnet")) > len(before) and found, 120,
                       message=f"the {mode} picture")
    wait_until(lambda: "Model: " in page.locator(f"#cn_{mode}_info textarea").input_value(), 20, message="infotext")
    return Image.open(next(p for p in after if p not in before)).convert("RGB")


def test_strokes_drawn_on_the_canvas_decide_the_place(page, app):
    """A square drawn with the mouse right of and below the sheet's centre: the picture's thing lies there."""
    page.get_by_role("tab", name="scribble", exact=True).click()
    page.wait_for_timeout(1000)
    page.click("#cn_scribble_image button[aria-label='Brush']")
    box = page.locator("#cn_scribble_image canvas").first.bounding_box()
    x, y = box["x"] + box["width"] / 2 + 60, box["y"] + box["height"] / 2 + 60     # the sheet is shown at half size
    page.mouse.move(x - 40, y - 40)
    page.mouse.down()
    for dx, dy in ((40, -40), (40, 40), (-40, 40), (-40, -40)):
        page.mouse.move(x + dx, y + dy, steps=8)
    page.mouse.up()
    map_ = preview_until(page, lambda lines: lines[256:, 256:].mean() > 0.02)
    assert not map_[:200, :200].any()
    found = foreground(generate_on(page, app, "scribble", "something red on a blue background"))
    assert found[32:, 32:].mean() > 0.15 and found[32:, 32:].mean() > 3 * found[:32, :32].mean()
    page.click("#cn_scribble_image button[aria-label='Clear canvas']")


def test_a_scribble_with_a_colour_prompt_comes_out_in_its_shape_and_place(page, app, tmp_path):
    """A large triangle drawn in the top-left quarter of a 512-px sheet: the picture's foreground lies there."""
    drawing = Image.new("RGB", (512, 512), "white")
    ImageDraw.Draw(drawing).polygon([(40, 300), (170, 40), (300, 300)], outline="black", width=12)
    drawing.save(tmp_path / "triangle.png")
    truth = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(truth).polygon([(5, 37.5), (21.25, 5), (37.5, 37.5)], fill=255)
    truth = np.asarray(truth) > 127
    page.get_by_role("tab", name="scribble", exact=True).click()
    page.wait_for_timeout(1000)                 # the canvas mounts when its tab opens
    page.set_input_files("#cn_scribble_image input[type=file]", str(tmp_path / "triangle.png"))
    assert page.locator("#cn_scribble_model input").input_value() == "starter-edges"
    map_ = preview_until(page, lambda lines: lines[:300, :300].mean() > 0.02)     # the drawing's lines, inverted
    assert not map_[320:, 320:].any()
    picture = generate_on(page, app, "scribble", "something green on a white background")
    found = foreground(picture)
    assert shape_iou(truth, found) > 0.3, shape_iou(truth, found)
    assert found[:40, :40].mean() > 3 * found[40:, 40:].mean()        # in the drawing's place, not the centre
    info = page.locator("#cn_scribble_info textarea").input_value()
    assert "Module: invert, Model: starter-edges" in info
