"""Control maps are fitted to the picture as A1111's ControlNet extension fits them (engine.control_map):
a 512-px canny map shrunk to 64 px stays a one-pixel black-and-white map where a Lanczos resize leaves
faint grey; few-colour maps keep their colours; the three resize modes crop, stretch or pad."""
import cv2
import numpy as np
from PIL import Image, ImageDraw

from engine.control import control_hint
from engine.control_map import fit_map, resize_map, thin
from engine.images import resize_image


def two_circles(size=512) -> np.ndarray:
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    draw.ellipse([40, 150, 220, 330], fill=(200, 30, 30))
    draw.ellipse([290, 150, 470, 330], fill=(30, 30, 200))
    return np.asarray(image)


def test_a_large_canny_map_stays_one_pixel_black_and_white_at_64_px():
    edges = cv2.Canny(two_circles(), 100, 200)
    fitted = fit_map(edges, 64, 64, "Crop and resize")
    assert fitted.shape == (64, 64, 3) and set(np.unique(fitted)) == {0, 255}
    lines = fitted[..., 0] > 0
    # both circles' outlines are there, where the 512-px ones were (radius 90 px -> 11 px), about one pixel wide
    for cx in (130 / 8, 380 / 8):
        ys, xs = np.nonzero(lines[:, int(cx) - 14:int(cx) + 14])
        distance = np.hypot(xs + int(cx) - 14 - cx + 0.5, ys - 240 / 8 + 0.5)
        assert len(distance) > 40 and np.abs(distance - 90 / 8).mean() < 1.5
    assert lines.sum() < 2 * np.pi * 11.25 * 2 * 1.6
    lanczos = np.asarray(resize_image("Crop and resize", Image.fromarray(edges).convert("RGB"), 64, 64))
    assert lanczos.max() < 128        # what the engine did before: lines too faint for a ControlNet to see


def test_thick_binary_maps_are_rebinarised_and_grey_maps_resized_smoothly():
    scribble = np.zeros((256, 256), np.uint8)
    cv2.circle(scribble, (128, 128), 80, 255, 12)
    fitted = fit_map(scribble, 64, 64, "Just resize")
    assert set(np.unique(fitted)) == {0, 255} and (fitted[..., 0] > 0).sum() > 2 * np.pi * 20 * 2
    soft = cv2.GaussianBlur(scribble, (0, 0), 6)
    assert len(np.unique(fit_map(soft, 64, 64, "Just resize"))) > 20


def test_few_colour_maps_keep_their_colours():
    seg = np.zeros((300, 300, 3), np.uint8)
    seg[:] = (120, 120, 120)
    seg[50:200, 60:250] = (255, 6, 51)
    seg[220:280, 20:90] = (4, 200, 3)
    out = resize_map(seg, 64, 64)
    colours = {tuple(c) for c in out.reshape(-1, 3)}
    assert colours == {(120, 120, 120), (255, 6, 51), (4, 200, 3)}


def test_resize_modes_crop_stretch_and_pad():
    wide = np.zeros((100, 200, 3), np.uint8)
    wide[:, :100] = 200                # left half light: 2 colours but not black-and-white
    wide[:, :, 1] = 30
    assert fit_map(wide, 64, 64, "Just resize").shape == (64, 64, 3)
    cropped = fit_map(wide, 64, 64, "Crop and resize")
    assert cropped.shape == (64, 64, 3) and np.allclose(cropped[:, :30, 0], 200) and np.allclose(cropped[:, 34:, 0], 0)
    filled = fit_map(wide, 64, 64, "Resize and fill")
    assert filled.shape == (64, 64, 3) and filled[:16, :, 1].min() == 30    # padded with the border's median colour
    same = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    assert np.array_equal(fit_map(same, 64, 64, "Crop and resize"), same)


def test_the_unit_reads_the_fitted_map():
    edges = cv2.Canny(two_circles(), 100, 200)
    hint = control_hint(Image.fromarray(edges), 64, 64, "Crop and resize")
    assert hint.shape == (1, 3, 64, 64) and set(hint.unique().tolist()) == {0.0, 1.0}


def test_thinning_leaves_a_one_pixel_line():
    band = np.zeros((20, 40), np.uint8)
    band[8:12, 5:35] = 255
    thinned = thin(band)
    assert 0 < (thinned > 0).sum() <= 34 and ((thinned[:, 8:32] > 0).sum(axis=0) == 1).all()   # ends may fork
