"""ControlNet preprocessors: the weight-free ones against A1111's formulas, the registration API with an example
extension, and the real PiDiNet / M-LSD weights when ../shared/weights is present."""
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from extensions import AnnotatorUnavailable, ExtensionAPI, load_extensions
from extensions.annotators import model_free

ROOT = Path(__file__).resolve().parents[1]
SHARED_WEIGHTS = ROOT.parent / "shared" / "weights"


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    return load_extensions(ExtensionAPI(tmp_path_factory.mktemp("no-weights")))


def square_picture(size=128):
    """A red square on white, size a multiple of 64 so A1111's pad-to-64 changes nothing."""
    picture = np.full((size, size, 3), 255, np.uint8)
    picture[32:96, 32:96] = (220, 30, 30)
    return picture


def test_canny_invert_threshold_match_a1111(api):
    img = square_picture()
    assert np.array_equal(api.run("canny", img, 128, 100, 200), cv2.Canny(img, 100, 200))
    edges = api.run("canny", img, 128)
    assert edges[30:34, 60].max() == 255 and edges[64, 64] == 0 and set(np.unique(edges)) == {0, 255}
    assert np.array_equal(api.run("invert", img), 255 - img)
    expected = np.zeros_like(img)
    expected[img.min(axis=2) > 127] = 255
    assert np.array_equal(api.run("threshold", img, 128, 127), expected)


def test_xdog_and_lineart_standard_match_a1111(api):
    img = np.full((128, 128, 3), 255, np.uint8)
    cv2.circle(img, (64, 64), 30, (10, 10, 10), 2)
    x = img.astype(np.float32)
    dog = (255 - np.min(cv2.GaussianBlur(x, (0, 0), 5.0) - cv2.GaussianBlur(x, (0, 0), 0.5), axis=2))
    dog = dog.clip(0, 255).astype(np.uint8)
    expected = np.zeros_like(img)
    expected[2 * (255 - dog) > 32] = 255
    assert np.array_equal(api.run("scribble_xdog", img, 128, 32), expected)
    intensity = np.min(cv2.GaussianBlur(x, (0, 0), 6.0) - x, axis=2).clip(0, 255)
    intensity = (intensity / max(16, np.median(intensity[intensity > 8])) * 127).clip(0, 255).astype(np.uint8)
    line = api.run("lineart_standard", img, 128)
    assert np.array_equal(line, intensity) and line[64, 34] > 100 and line[5, 5] == 0


def test_resize_with_pad_follows_the_short_side_and_crops_back(api):
    picture = np.zeros((100, 150, 3), np.uint8)
    padded, crop = model_free.resize_with_pad(picture, 256)
    assert padded.shape == (256, 384, 3) and crop(padded).shape == (256, 384, 3)
    padded, crop = model_free.resize_with_pad(np.zeros((90, 90, 3), np.uint8), 100)
    assert padded.shape == (128, 128, 3) and crop(padded).shape == (100, 100, 3)
    assert api.run("canny", np.zeros((90, 120, 3), np.uint8), 90).shape == (90, 120)


def test_normal_from_depth_is_a1111s_formula():
    depth = np.tile(np.linspace(0, 255, 64, dtype=np.float32), (64, 1))       # a ramp rising to the right
    normal = model_free.normal_from_depth(depth, 0.4)
    x = cv2.Sobel(depth, cv2.CV_32F, 1, 0, ksize=3)
    n = np.stack([x, np.zeros_like(x), np.full_like(x, np.pi * 2)], axis=2)
    n /= np.sum(n ** 2, axis=2, keepdims=True) ** 0.5
    expected = (n * 127.5 + 127.5).clip(0, 255).astype(np.uint8)[:, :, ::-1]
    assert np.array_equal(normal[:, 40:60], expected[:, 40:60])               # above the background threshold
    assert (normal[:, 5] == [255, 127, 127]).all()                            # background: facing the viewer


def test_shuffle_is_seeded_and_mlsd_opencv_finds_the_squares_sides(api):
    img = square_picture()
    first, second = api.run("shuffle", img, 128), api.run("shuffle", img, 128)
    assert np.array_equal(first, second) and first.shape == img.shape and not np.array_equal(first, img)
    lines = api.run("mlsd_opencv", img, 128, 16)
    assert lines[20:108, 30:35].max() == 255 and lines[50:80, 50:80].max() == 0


def test_missing_weights_are_named_and_none_of_the_free_ones_need_any(api):
    for name in ("softedge_pidinet", "mlsd", "openpose", "openpose_mediapipe", "depth_midas", "softedge_hed",
                 "lineart_realistic"):
        assert api.availability(name).startswith(f"{name} needs ") and str(api.weights_dir) in api.availability(name)
        with pytest.raises(AnnotatorUnavailable, match=api.preprocessors[name].weights[0]):
            api.run(name, square_picture())
    assert "python -m extensions.annotators.pose_models" in api.availability("openpose_mediapipe")
    free = ["canny", "invert", "threshold", "scribble_xdog", "lineart_standard", "mlsd_opencv", "shuffle",
            "depth_to_normal"]
    assert all(api.availability(name) == "" for name in free)
    assert {m for p in api.preprocessors.values() for m in p.modes} >= {"canny", "mlsd", "scribble", "softedge",
                                                                        "lineart", "shuffle", "normal", "openpose"}


def test_an_extension_folder_registers_and_a_broken_one_is_reported(tmp_path):
    shutil.copytree(ROOT / "docs" / "example_extension", tmp_path / "luma")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "__init__.py").write_text("raise RuntimeError('oops')\n")
    api = load_extensions(ExtensionAPI(tmp_path), tmp_path)
    assert api.loaded == ["luma"] and "oops" in api.failed["broken"]
    assert [p.name for p in api.for_mode("canny")] == ["luma_edges"]
    edges = api.run("luma_edges", square_picture())
    assert edges[31, 60] == 255 and edges[64, 64] == 0


@pytest.mark.skipif(not (SHARED_WEIGHTS / "table5_pidinet.pth").is_file(),
                    reason="the real PiDiNet weights are in ../shared/weights, which this checkout lacks")
def test_real_pidinet_finds_the_squares_border():
    api = load_extensions(ExtensionAPI(SHARED_WEIGHTS))
    soft = api.run("softedge_pidinet", square_picture(), 128)[..., 0].astype(int)
    assert soft[32, 40:90].mean() > 100 and soft[60:70, 60:70].mean() < 30 and soft[5:15, 5:15].mean() < 30


@pytest.mark.skipif(not (SHARED_WEIGHTS / "mlsd_tiny_512_fp32.pth").is_file(),
                    reason="the real M-LSD tiny weights are in ../shared/weights, which this checkout lacks")
def test_real_mlsd_tiny_finds_straight_lines():
    api = load_extensions(ExtensionAPI(SHARED_WEIGHTS))
    picture = np.full((512, 512, 3), 255, np.uint8)
    cv2.rectangle(picture, (100, 100), (400, 400), (0, 0, 0), 6)
    lines = api.run("mlsd_tiny", picture, 512)[..., 0]
    assert lines[95:106, 150:350].max() == 255 and lines[200:300, 200:300].max() == 0


@pytest.fixture(scope="module")
def pose_api():
    """The BlazePose models, fetched from the mediapipe wheel on PyPI as the README's set-up command does."""
    from extensions.annotators import pose_models
    pose_models.fetch()
    return load_extensions(ExtensionAPI(pose_models.DEFAULT_FOLDER))


def test_openpose_mediapipe_finds_the_astronauts_face_and_shoulders(pose_api):
    from skimage.data import astronaut
    from extensions.annotators.pose_mediapipe import landmarks
    picture = astronaut()                     # 512x512, a woman's head and shoulders, facing the camera
    points = landmarks(picture, pose_api.weights_dir)
    nose, left_eye, right_eye, left_shoulder, right_shoulder = points[[0, 2, 5, 11, 12]]
    assert 190 < nose[0] < 240 and 110 < nose[1] < 160                     # her nose, by eye: (214, 134)
    assert right_eye[0] < nose[0] < left_eye[0] and max(left_eye[1], right_eye[1]) < nose[1]
    assert right_shoulder[0] < 160 < 260 < left_shoulder[0]                 # her right is the picture's left
    assert 190 < right_shoulder[1] < 260 and 190 < left_shoulder[1] < 260
    pose = pose_api.run("openpose_mediapipe", picture, 512)
    assert pose.shape == (512, 512, 3)
    nose_dot = np.argwhere((pose == (255, 0, 0)).all(axis=2)).mean(axis=0)   # OpenPose's keypoint 0 colour
    assert np.abs(nose_dot - nose[1::-1]).max() < 6
    assert not pose_api.run("openpose_mediapipe", np.full((256, 256, 3), 128, np.uint8), 256).any()  # nobody


def test_openpose_mediapipe_gives_each_of_two_threads_its_own_answer(pose_api):
    """Two tabs (or a tab and the API) detecting at once share one LiteRT interpreter, which must take turns."""
    from concurrent.futures import ThreadPoolExecutor
    from skimage.data import astronaut
    pictures = [astronaut(), np.ascontiguousarray(astronaut()[:, ::-1])] * 4
    alone = [pose_api.run("openpose_mediapipe", p, 512) for p in pictures[:2]]
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(lambda p: pose_api.run("openpose_mediapipe", p, 512), pictures))
    for i, pose in enumerate(together):
        assert np.array_equal(pose, alone[i % 2])
