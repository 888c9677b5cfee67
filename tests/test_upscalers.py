"""Model upscalers through spandrel (tiled = untiled, safe loading), the Extras upscale as A1111's, and the
hires fix with a model upscaler."""
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from engine.extras import ExtrasError, ExtrasUpscale, upscale_picture
from engine.hires import HiresFix
from engine.loading.tensor_files import UnsafePickleError
from engine.upscaler_models import ModelUpscalers, UpscalerModelError, load_upscaler, tiled
from engine.upscalers import upscale
from tests.test_pipeline import pipe, request  # noqa: F401  (pipe: a fixture)

spandrel = pytest.importorskip("spandrel", reason="pip install -r requirements.txt (spandrel reads upscaler models)")


def tiny_esrgan(seed=0):
    from spandrel.architectures.ESRGAN import ESRGAN
    torch.manual_seed(seed)
    return ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=4).eval()


def write_upscalers(models):
    """models/ESRGAN/4x-tiny.safetensors, models/RealESRGAN/RealESRGAN_x2-compact.pth (BasicSR's params_ema)."""
    from spandrel.architectures.Compact import Compact
    (models / "ESRGAN").mkdir(parents=True)
    (models / "RealESRGAN").mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in tiny_esrgan().state_dict().items()}, models / "ESRGAN" / "4x-tiny.safetensors")
    torch.manual_seed(1)
    compact = Compact(num_feat=8, num_conv=24, upscale=2)
    torch.save({"params_ema": compact.state_dict()}, models / "RealESRGAN" / "RealESRGAN_x2-compact.pth")
    return models


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return write_upscalers(tmp_path_factory.mktemp("models"))


def picture(seed=0, size=(40, 28)):
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def test_upscaler_files_are_found_by_name_and_read_by_architecture(models):
    ups = ModelUpscalers(models)
    assert ups.names() == ["4x-tiny", "RealESRGAN_x2-compact"]
    assert ups.scale_of("4x-tiny") == 4 and ups.scale_of("RealESRGAN_x2-compact") == 2
    model = load_upscaler(models / "RealESRGAN" / "RealESRGAN_x2-compact.pth")
    assert model.architecture.name == "RealESRGAN Compact"
    out = ups.upscale_once("4x-tiny", picture())
    with torch.inference_mode():
        x = torch.from_numpy(np.asarray(picture(), dtype=np.float32) / 255).permute(2, 0, 1)[None]
        ref = tiny_esrgan()(x).clamp(0, 1)[0].permute(1, 2, 0).numpy() * 255
    assert out.size == (160, 112) and np.abs(np.asarray(out, np.float32) - ref).max() <= 0.5 + 1e-3


def test_a_tiled_upscale_equals_the_untiled_one(models):
    model = load_upscaler(models / "RealESRGAN" / "RealESRGAN_x2-compact.pth")      # 26 convolutions deep
    x = torch.rand(1, 3, 150, 110, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        whole, pieces = model(x), tiled(model, x, tile=48, overlap=8)
    assert pieces.shape == whole.shape == (1, 3, 300, 220)
    assert ((pieces - whole).abs() * 255).max() <= 1.0


def test_a_pickle_that_would_run_code_and_a_file_that_is_no_upscaler_are_refused(tmp_path):
    (tmp_path / "ESRGAN").mkdir()
    torch.save({"params_ema": {"w": torch.zeros(1)}, "hook": Image.new("RGB", (1, 1))}, tmp_path / "ESRGAN" / "evil.pth")
    save_file({"just.a.tensor": torch.zeros(3)}, tmp_path / "ESRGAN" / "notes.safetensors")
    ups = ModelUpscalers(tmp_path)
    with pytest.raises(UnsafePickleError):
        ups.upscale_once("evil", picture())
    with pytest.raises(UpscalerModelError, match="not an upscaler architecture"):
        ups.upscale_once("notes", picture())


def test_a_model_step_repeats_until_the_size_then_lanczos():
    steps = []

    def x4(image, scale):
        steps.append(image.size)
        return image.resize((image.width * 4, image.height * 4))
    assert upscale(picture(), 2, x4).size == (80, 56) and steps == [(40, 28)]      # one 4x pass, then down to 2x
    steps.clear()
    assert upscale(picture(), 8, x4).size == (320, 224) and len(steps) == 2


def test_extras_scale_by_scale_to_and_a_second_upscaler_as_a1111(models):
    steps = ModelUpscalers(models).steps()
    source = picture()
    out, info = upscale_picture(source, ExtrasUpscale(upscaler_1="Lanczos", scale=2), steps)
    assert np.array_equal(np.asarray(out), np.asarray(source.resize((80, 56), Image.LANCZOS)))
    assert info == {"Postprocess upscale by": 2, "Postprocess upscaler": "Lanczos"}
    out, info = upscale_picture(source, ExtrasUpscale(upscaler_1="4x-tiny", mode=1, width=100, height=100), steps)
    assert out.size == (100, 100) and info["Postprocess crop to"] == "100x100"
    plain = upscale(source, 100 / 28, steps["4x-tiny"])                # covers 100x100, then cropped to the centre
    box = (plain.width // 2 - 50, plain.height // 2 - 50)
    assert np.array_equal(np.asarray(out), np.asarray(plain.crop((*box, box[0] + 100, box[1] + 100))))
    blended, info = upscale_picture(source, ExtrasUpscale(upscaler_1="Lanczos", upscaler_2="Nearest",
                                                          upscaler_2_visibility=0.25, scale=2), steps)
    nearest = upscale_picture(source, ExtrasUpscale(upscaler_1="Nearest", scale=2), steps)[0]
    lanczos = upscale_picture(source, ExtrasUpscale(upscaler_1="Lanczos", scale=2), steps)[0]
    assert np.array_equal(np.asarray(blended), np.asarray(Image.blend(lanczos, nearest, 0.25)))
    assert info["Postprocess upscaler 2"] == "Nearest"
    limited, info = upscale_picture(source, ExtrasUpscale(upscaler_1="Lanczos", scale=4, max_side_length=100), steps)
    assert max(limited.size) <= 100 and info["Max side length"] == 100
    assert upscale_picture(source, ExtrasUpscale(), steps) == (source, {})        # Upscaler 1 "None": unchanged
    with pytest.raises(ExtrasError, match="no upscaler named 'Super'"):
        upscale_picture(source, ExtrasUpscale(upscaler_1="Super"), steps)


def test_hires_fix_with_a_model_upscaler(pipe, models):
    ups = ModelUpscalers(models)
    used = []
    steps = {name: (lambda image, scale, step=step: used.append(image.size) or step(image, scale))
             for name, step in ups.steps().items()}
    run = pipe.generate(request(hires=HiresFix(upscaler="4x-tiny", scale=2, steps=2)), upscalers=steps)
    assert run.images[0].size == (128, 128) and used == [(64, 64)]
    assert "Hires upscaler: 4x-tiny" in run.infotexts[0]
