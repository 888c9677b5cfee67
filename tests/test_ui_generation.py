"""The generating tabs' runner without a browser: saving on and off, a failed save, bad requests, previews."""
import gradio as gr
import pytest

from engine import Device, GenerationRequest
from tests.browser import MODELS
from ui.model_state import ModelState
from ui.results import run_generation
from ui.settings import Settings
from ui.studio import Studio


@pytest.fixture(scope="module")
def state():
    state = ModelState(MODELS, Device.cpu_fp32())
    assert state.load("starter").startswith("Loaded starter")
    return state


def run(studio, **fields):
    updates = list(run_generation(studio, "txt2img", GenerationRequest(width=64, height=64, **fields)))
    return updates


def test_saves_each_picture_once_with_its_infotext(state, tmp_path):
    studio = Studio(state, Settings(preview_every=1), tmp_path / "s.json", tmp_path / "out")
    updates = run(studio, prompt="a star", steps=6, seed=5, batch_size=2)
    progress, preview, gallery, info, results, selected, last_seed = updates[-1]
    assert len(gallery) == 2 and last_seed == 5 and info.startswith("a star\n")
    files = sorted((tmp_path / "out").rglob("*.png"))
    assert [f.name for f in files] == ["00000-5.png", "00001-6.png"]
    assert "Saved to" in progress and studio.jobs.current is None


def test_saving_off_and_a_failed_save_keep_the_pictures(state, tmp_path):
    studio = Studio(state, Settings(save_outputs=False), tmp_path / "s.json", tmp_path / "out")
    progress, *_ = run(studio, prompt="a ring", steps=3, seed=1)[-1]
    assert "Not saved (saving is off" in progress and not (tmp_path / "out").exists()

    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the outputs folder should be")
    studio = Studio(state, Settings(), tmp_path / "s.json", blocked)
    progress, _, gallery, *_ = run(studio, prompt="a ring", steps=3, seed=1)[-1]
    assert "Not saved." in progress and len(gallery) == 1
    assert blocked.read_text().startswith("a file")


def test_bad_requests_become_readable_errors_and_the_app_stays_ready(state, tmp_path):
    studio = Studio(state, Settings(), tmp_path / "s.json", tmp_path / "out")
    with pytest.raises(gr.Error, match="steps must be between 1 and 150"):
        run(studio, prompt="x", steps=0)
    assert studio.jobs.current is None
    assert len(run(studio, prompt="x", steps=2)[-1][2]) == 1


def test_live_previews_arrive_during_the_run(state, tmp_path):
    studio = Studio(state, Settings(preview_every=1, preview_method="Full"), tmp_path / "s.json", tmp_path / "o")
    updates = run(studio, prompt="a square", steps=60, batch_count=2, seed=2)
    previews = [u[1] for u in updates[:-1] if not isinstance(u[1], type(gr.skip()))]
    assert previews and all(p.size == (64, 64) for p in previews)
