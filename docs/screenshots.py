"""Screenshots of each tab for the README, taken in headless Chromium on the starter model.

    python docs/screenshots.py
"""
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from tests.browser import RunningApp, launch_chromium, wait_until  # noqa: E402

PROMPT = "a red circle in the center on a blue background"


def main():
    with tempfile.TemporaryDirectory() as scratch:
        app = RunningApp(Path(scratch) / "outputs", Path(scratch) / "settings.json")
        try:
            with sync_playwright() as p:
                browser = launch_chromium(p)
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(app.url)
                page.wait_for_selector("#page_ready .ready", state="attached")
                page.locator("#txt2img_batch_size input[type=number]").fill("4")
                page.locator("#txt2img_batch_size input[type=number]").press("Tab")
                page.click("#txt2img_generate")
                wait_until(lambda: "picture(s)" in page.inner_text("#txt2img_progress"), 120, message="pictures")
                page.screenshot(path=ROOT / "docs" / "txt2img.png", full_page=True)
                page.click("#txt2img_send_to_inpaint")
                page.wait_for_timeout(4000)
                page.screenshot(path=ROOT / "docs" / "img2img-inpaint.png", full_page=True)
                saved = next((Path(scratch) / "outputs").rglob("*.png"))
                page.get_by_role("tab", name="PNG Info", exact=True).click()
                page.set_input_files("#png_info_image input[type=file]", str(saved))
                page.wait_for_timeout(1500)
                page.screenshot(path=ROOT / "docs" / "png-info.png", full_page=True)
                page.get_by_role("tab", name="ControlNet", exact=True).click()
                page.wait_for_timeout(1000)
                page.screenshot(path=ROOT / "docs" / "controlnet.png", full_page=True)
                page.get_by_role("tab", name="Models & Settings", exact=True).click()
                page.wait_for_timeout(500)
                page.screenshot(path=ROOT / "docs" / "models-settings.png", full_page=True)
                browser.close()
        finally:
            app.close()


if __name__ == "__main__":
    main()
