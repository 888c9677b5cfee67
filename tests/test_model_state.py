"""The app's model slot: lists what is in models/, loads by name, keeps the old model when a load fails."""
import pytest
from safetensors.torch import save_file

from engine import Device
from tests.reference import ldm_state_dict, reference_models, save_diffusers_folder
from ui.model_state import ModelState


@pytest.fixture
def models_dir(tmp_path):
    refs = reference_models()
    folder = tmp_path / "models" / "Stable-diffusion"
    save_diffusers_folder(folder / "tiny-diffusers", *refs)
    (folder / "sub").mkdir()
    save_file(ldm_state_dict(*refs), folder / "sub" / "tiny.safetensors")
    (folder / "broken.safetensors").write_text("<html>not a model</html>")
    return tmp_path / "models"


def test_lists_loads_and_survives_a_bad_file(models_dir):
    state = ModelState(models_dir, Device.cpu_fp32())
    assert state.checkpoint_names() == ["broken.safetensors", "sub/tiny.safetensors", "tiny-diffusers"]
    status = state.load("sub/tiny.safetensors")
    assert status.startswith("Loaded tiny: SD-family (context 64)") and "epsilon prediction" in status
    loaded = state.pipeline
    status = state.load("broken.safetensors")
    assert "web page" in status and "Still using tiny" in status
    assert state.pipeline is loaded
    assert state.load("tiny-diffusers").startswith("Loaded tiny-diffusers")


def test_names_cannot_leave_the_checkpoint_folder(models_dir):
    state = ModelState(models_dir, Device.cpu_fp32())
    assert "not inside" in state.load("../../outside.safetensors")
    assert state.pipeline is None


def test_app_builds_with_and_without_models(models_dir, tmp_path):
    from engine import EngineError, GenerationRequest
    from ui.app import TABS, build_app
    from ui.settings import Settings
    from ui.settings_tab import model_status
    from ui.studio import Studio
    for folder in (models_dir, tmp_path / "empty"):
        studio = Studio(ModelState(folder, Device.cpu_fp32()), Settings(), tmp_path / "s.json", tmp_path / "out")
        assert build_app(studio) is not None
        from extensions import CONTROL_MODES
        assert set(studio.destinations) == {"img2img", "inpaint", "Consistency",
                                            *(f"ControlNet {m}" for m in CONTROL_MODES)}
        assert [t.id for t in studio.declared] == [t.id for t in TABS]
    assert "No checkpoints found" in model_status(studio.state)            # the empty folder says what to do
    with pytest.raises(EngineError, match="No model is loaded"):
        studio.state.generate(GenerationRequest(prompt="x"))
