"""The app served in-process on a free port, and a real headless Chromium driven by Playwright."""
import shutil
import socket
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from engine import Device
from ui.app import CSS, build_app
from ui.model_state import ModelState
from ui.server import ServerPolicy, serve
from ui.settings import Settings
from ui.studio import Studio

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
MODELS = Path(__file__).resolve().parents[1] / "models"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningApp:
    """The studio on the starter model (loaded before the first page), saving into `outdir`, served as
    webui.py serves it (`serve`, with `policy` as its flags would make it)."""

    def __init__(self, outdir: Path, settings_path: Path, settings: Settings | None = None, models: Path = MODELS,
                 api_users: list[tuple[str, str]] | None = None, api: bool = False,
                 policy: ServerPolicy | None = None, auth: list[tuple[str, str]] | None = None):
        self.state = ModelState(models, Device.cpu_fp32())
        status = self.state.load("starter")
        assert status.startswith("Loaded starter"), status
        self.studio = Studio(self.state, settings or Settings(), settings_path, outdir)
        self.app = build_app(self.studio).queue(default_concurrency_limit=None)
        self.port = free_port()
        server = serve(self.app, "127.0.0.1", self.port, policy or ServerPolicy(), auth=auth, css=CSS)
        if api or api_users:
            from ui.api import create_api
            create_api(server, self.studio, api_users, {"api": True})
        self.url = f"http://127.0.0.1:{self.port}/"

    def close(self):
        self.app.close()


def launch_chromium(playwright):
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is needed for the browser tests: apt-get install chromium (the README's test "
                    "command does it)")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


@contextmanager
def page_on_tab(app: RunningApp, tab: str, height: int = 1000):
    """A headless Chromium page on the running app, opened on `tab`; closed afterwards."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1280, "height": height})
        page.goto(app.url)
        page.wait_for_selector("#page_ready .ready", state="attached")
        page.get_by_role("tab", name=tab, exact=True).first.click()
        yield page
        browser.close()


def upload_to_canvas(page, elem_id: str, path):
    """Upload to an image editor's canvas and wait until it has fitted the picture (its zoom label changes)."""
    import re

    def zoom():
        found = re.search(r"(\d+)%", page.inner_text(f"#{elem_id}"))
        return found and found.group(1)
    before = wait_until(zoom, 20, message=f"the {elem_id} canvas")
    page.set_input_files(f"#{elem_id} input[type=file]", str(path))
    wait_until(lambda: zoom() != before, 20, message="the canvas to fit the uploaded picture")
    page.wait_for_timeout(500)


def wait_until(condition, timeout: float = 60.0, every: float = 0.2, message: str = "condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {message}")


def models_with_test_controlnets(folder: Path) -> Path:
    """A models folder: the starter checkpoint (copied: links out of the folder are refused) and random
    ControlNets shaped for it, one for canny and one for openpose, as diffusers folders."""
    import json
    import shutil

    import torch
    from safetensors.torch import save_file

    from engine.models.controlnet import ControlNetConfig, ControlNetModel
    shutil.copytree(MODELS / "Stable-diffusion" / "starter", folder / "Stable-diffusion" / "starter")
    unet = json.loads((MODELS / "Stable-diffusion" / "starter" / "unet" / "config.json").read_text())
    config = {**unet, "conditioning_embedding_out_channels": [16, 32, 96]}   # f=4 latents: two stride-2 steps
    for i, name in enumerate(("control_test_canny", "control_test_openpose")):
        torch.manual_seed(i)
        model = ControlNetModel(ControlNetConfig.from_dict(config))
        target = folder / "ControlNet" / name
        target.mkdir(parents=True)
        (target / "config.json").write_text(json.dumps(config))
        save_file({k: v.contiguous() for k, v in model.state_dict().items()},
                  target / "diffusion_pytorch_model.safetensors")
    return folder
