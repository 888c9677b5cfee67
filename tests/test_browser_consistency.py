"""The Consistency tab in a real headless Chromium: a few-step picture from an LCM checkpoint, live mode
redrawing as the prompt changes (without saving), img2img from an uploaded picture, and a LoRA picked from
the list into the prompt."""
import shutil

import pytest

from tests.browser import MODELS, RunningApp, page_on_tab, upload_to_canvas, wait_until
from tests.test_browser import saved, set_number, wait_done

playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (requirements-dev.txt)")


def models_with_an_lcm_checkpoint(folder):
    """The starter, and a "starter-lcm-test" made by the distillation script's own student initialisation
    (the starter's weights plus a zero guidance projection): an LCM-layout checkpoint, undistilled."""
    from training import distill_lcm
    from training.train_controlnet import frozen_starter
    starter = folder / "Stable-diffusion" / "starter"
    shutil.copytree(MODELS / "Stable-diffusion" / "starter", starter)
    teacher, _ = frozen_starter(starter)
    distill_lcm.export(distill_lcm.student_from(teacher), starter, 0, folder / "Stable-diffusion" / "starter-lcm-test")
    import torch
    from safetensors.torch import save_file
    g = torch.Generator().manual_seed(0)
    to_q = teacher.get_submodule("down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_q").weight
    (folder / "Lora").mkdir()
    base = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_q"
    save_file({f"{base}.lora_down.weight": torch.randn(4, to_q.shape[1], generator=g),
               f"{base}.lora_up.weight": torch.randn(to_q.shape[0], 4, generator=g) * 0.1,
               f"{base}.alpha": torch.tensor(4.0)}, folder / "Lora" / "shapes-style.safetensors")
    return folder


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("consistency")
    running = RunningApp(root / "outputs", root / "settings.json", models=models_with_an_lcm_checkpoint(root / "models"))
    yield running
    running.close()


@pytest.fixture(scope="module")
def page(app):
    with page_on_tab(app, "Consistency", height=1100) as page:
        yield page


def info(page):
    return page.locator("#consistency_info textarea").input_value()


def test_generate_uses_the_lcm_checkpoint_in_four_steps(page, app):
    assert page.locator("#consistency_model input").input_value() == "starter-lcm-test"
    page.fill("#consistency_prompt textarea", "a yellow star in the center on a purple background")
    set_number(page, "consistency_seed", 5)
    page.click("#consistency_generate")
    wait_done(page, "consistency")
    text = info(page)
    assert "Steps: 4, Sampler: LCM, Schedule type: LCM" in text and "Model: starter-lcm-test" in text
    assert "Seed: 5" in text
    assert len(saved(app, "consistency")) == 1
    assert app.state.pipeline.name == "starter"        # the loaded model of the other tabs stays as it was


def test_live_mode_redraws_as_the_prompt_changes_without_saving(page, app):
    before = len(saved(app, "consistency"))
    page.check("#consistency_live input")
    box = page.locator("#consistency_prompt textarea")
    box.fill("")
    box.press_sequentially("a blue ring at the top", delay=30)     # a change per key: one picture at the end
    wait_until(lambda: info(page).startswith("a blue ring at the top\n"), 60, message="the live picture")
    set_number(page, "consistency_seed", 9)
    wait_until(lambda: "Seed: 9" in info(page), 60, message="a live redraw for the new seed")
    assert "Live picture, not saved" in page.inner_text("#consistency_progress")
    assert len(saved(app, "consistency")) == before
    page.uncheck("#consistency_live input")
    box.fill("a white square on a black background")
    page.wait_for_timeout(1500)
    assert "Seed: 9" in info(page) and info(page).startswith("a blue ring")   # live off: nothing redrawn


def test_img2img_from_an_uploaded_picture(page, app, tmp_path):
    from PIL import Image
    picture = tmp_path / "picture.png"
    Image.new("RGB", (64, 64), (30, 160, 60)).save(picture)
    page.get_by_text("Start from a picture").click()
    upload_to_canvas(page, "consistency_image", picture)
    set_number(page, "consistency_strength", 0.5)
    page.click("#consistency_generate")
    wait_until(lambda: info(page).startswith("a white square"), 60, message="the img2img picture")
    assert "Denoising strength: 0.5" in info(page) and "Steps: 4" in info(page)


def test_a_lora_picked_from_the_list_goes_into_the_prompt_and_the_picture(page, app):
    page.uncheck("#consistency_live input")
    page.fill("#consistency_prompt textarea", "a red circle")
    page.click("#consistency_lora input")
    page.get_by_role("option", name="shapes-style").click()
    prompt = page.locator("#consistency_prompt textarea")
    wait_until(lambda: prompt.input_value() == "a red circle <lora:shapes-style:1>", 10, message="the LoRA tag")
    prompt.fill(prompt.input_value().replace(":1>", ":0.6>"))
    page.click("#consistency_generate")
    wait_until(lambda: info(page).startswith("a red circle <lora:shapes-style:0.6>"), 60, message="the picture")
    assert 'Lora hashes: "shapes-style: ' in info(page)


def test_colorize_and_super_resolve_a_picture(page, app, tmp_path):
    """Zero-shot edits from the tab: a greyscale scene comes back with its brightness and new colours; a 16-px
    picture comes back four times as large with its pixels as the averages of the larger one's."""
    import numpy as np
    from PIL import Image

    from training.scenes import render, scene_for
    page.uncheck("#consistency_live input")
    scene, text = scene_for(900_003, max_shapes=1)
    truth = render(scene)
    grey = truth.convert("L").convert("RGB")
    grey.save(tmp_path / "grey.png")
    if not page.locator("#consistency_task").is_visible():
        page.get_by_text("Start from a picture").click()
    page.locator("#consistency_task").get_by_text("Colorize").click()
    upload_to_canvas(page, "consistency_image", tmp_path / "grey.png")
    page.fill("#consistency_prompt textarea", text)
    before = len(saved(app, "consistency"))
    page.click("#consistency_generate")
    wait_until(lambda: "Zero-shot: Colorize" in info(page), 90, message="the colorized picture")
    wait_until(lambda: len(saved(app, "consistency")) > before, 10, message="the picture saved")
    made = Image.open(saved(app, "consistency")[-1]).convert("RGB")
    assert made.size == (64, 64) and "Denoising strength: 1" in info(page)    # picking the task set strength 1
    kept = np.abs(np.asarray(made.convert("L"), np.float32) - np.asarray(grey.convert("L"), np.float32))
    assert kept.mean() < 1 and np.asarray(made).std(axis=2).mean() > 20

    small = truth.resize((16, 16), Image.BOX)
    small.save(tmp_path / "small.png")
    page.locator("#consistency_task").get_by_text("Super-resolve").click()
    upload_to_canvas(page, "consistency_image", tmp_path / "small.png")
    before = len(saved(app, "consistency"))
    page.click("#consistency_generate")
    wait_until(lambda: "Zero-shot: Super-resolve" in info(page), 90, message="the super-resolved picture")
    wait_until(lambda: len(saved(app, "consistency")) > before, 10, message="the picture saved")
    made = Image.open(saved(app, "consistency")[-1]).convert("RGB")
    assert made.size == (64, 64) and "Zero-shot scale: 4" in info(page)
    assert np.abs(np.asarray(made.resize((16, 16), Image.BOX), np.float32) - np.asarray(small, np.float32)).max() <= 2
