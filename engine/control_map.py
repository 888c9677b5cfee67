"""Fitting a detected control map to the picture's size, as A1111's ControlNet extension does it
(`detectmap_proc` and its `high_quality_resize`).

A plain Lanczos resize of a 512-px canny map to a 64-px picture leaves faint grey smudges where the one-pixel
lines were; the extension instead keeps maps in the kind they are:
- maps of 3-199 colours (segmentation, pose skeletons) resize by nearest neighbour, so no new colours appear;
- black-and-white maps are re-binarised after the resize (Otsu's threshold), and one-pixel edge maps are also
  non-maximum-suppressed and thinned back to one pixel, so a canny map stays a canny map at any size;
- everything else resizes by area when shrinking and bicubic when growing.
Resize modes: "Just resize" stretches; "Crop and resize" scales to cover and crops the middle; "Resize and
fill" scales to fit and fills the rest with the median colour of the map's border.
"""
import cv2
import numpy as np

# hit-or-miss patterns (1 = on, -1 = off, 0 = either) that peel one pixel off a thick line, in 4 rotations
_THIN = [np.array([[-1, -1, -1], [0, 1, 0], [1, 1, 1]], np.int32),
         np.array([[0, -1, -1], [1, 1, -1], [0, 1, 0]], np.int32)]
_PRUNE = [np.array([[-1, -1, -1], [-1, 1, -1], [0, 0, -1]], np.int32),
          np.array([[-1, -1, -1], [-1, 1, -1], [-1, 0, 0]], np.int32)]
THINNING = [np.rot90(k, r) for r in range(4) for k in _THIN]
PRUNING = [np.rot90(k, r) for r in range(4) for k in _PRUNE]
# the four line directions along which a pixel must be a local maximum to survive
_NMS = [np.array(k, np.uint8) for k in ([[0, 0, 0], [1, 1, 1], [0, 0, 0]], [[0, 1, 0], [0, 1, 0], [0, 1, 0]],
                                         [[1, 0, 0], [0, 1, 0], [0, 0, 1]], [[0, 0, 1], [0, 1, 0], [1, 0, 0]])]


def _peel(x: np.ndarray, patterns) -> bool:
    """Switch off every pixel that matches one of the patterns; True when any did."""
    changed = False
    for pattern in patterns:
        hits = cv2.morphologyEx(x, cv2.MORPH_HITMISS, pattern) > 127
        if hits.any():
            x[hits] = 0
            changed = True
    return changed


def thin(x: np.ndarray, prune: bool = True) -> np.ndarray:
    """Binary lines (uint8, 0/255) thinned to one pixel; `prune` also removes one-pixel spurs."""
    x = x.copy()
    for _ in range(32):
        if not _peel(x, THINNING):
            break
    if prune:
        _peel(x, PRUNING)
    return x


def non_maximum_suppression(x: np.ndarray) -> np.ndarray:
    """Keep a pixel where it is the maximum of its 3-pixel neighbourhood along any of four directions."""
    y = np.zeros_like(x)
    for kernel in _NMS:
        np.putmask(y, cv2.dilate(x, kernel=kernel) == x, x)
    return y


def _colour_count(x: np.ndarray) -> int:
    if (x == x[:, :, :1]).all():       # grey maps (most of them): count the levels of one channel
        return int(np.count_nonzero(np.bincount(x[:, :, 0].ravel(), minlength=256)))
    packed = (x[:, :, 0].astype(np.int32) << 16) | (x[:, :, 1].astype(np.int32) << 8) | x[:, :, 2]
    return len(np.unique(packed))


def resize_map(x: np.ndarray, width: int, height: int) -> np.ndarray:
    """An (H, W, 3) uint8 map resized to (height, width, 3), keeping binary, one-pixel and few-colour maps so."""
    if x.shape[:2] == (height, width):
        return x
    smaller = width * height < x.shape[0] * x.shape[1]
    colours = _colour_count(x)
    binary = colours == 2 and x.min() < 16 and x.max() > 240
    one_pixel = False
    if binary:
        opened = cv2.dilate(cv2.erode(x, np.ones((3, 3), np.uint8)), np.ones((3, 3), np.uint8))
        one_pixel = (opened < x).sum() * 2 > (x > 127).sum()
    interpolation = (cv2.INTER_NEAREST if 2 < colours < 200 else cv2.INTER_AREA if smaller else cv2.INTER_CUBIC)
    y = cv2.resize(x, (width, height), interpolation=interpolation)
    if not binary:
        return y
    y = y.astype(np.float32).mean(axis=2).clip(0, 255).astype(np.uint8)
    if one_pixel:
        y = non_maximum_suppression(y)
        y = cv2.threshold(y, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)[1]
        y = thin(y, prune=width * height > x.shape[0] * x.shape[1])
    else:
        y = cv2.threshold(y, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)[1]
    return np.stack([y] * 3, axis=2)


def fit_map(x: np.ndarray, width: int, height: int, resize_mode: str) -> np.ndarray:
    """The map fitted to a width x height picture by one of A1111's resize modes."""
    if x.ndim == 2:
        x = np.stack([x] * 3, axis=2)
    x = np.ascontiguousarray(x[:, :, :3].astype(np.uint8))
    if resize_mode == "Just resize":
        return resize_map(x, width, height)
    old_h, old_w = x.shape[:2]
    k_h, k_w = height / old_h, width / old_w
    if resize_mode == "Resize and fill":
        k = min(k_h, k_w)
        border = np.concatenate([x[0], x[-1], x[:, 0], x[:, -1]], axis=0)
        canvas = np.tile(np.median(border, axis=0).astype(np.uint8)[None, None], (height, width, 1))
        fitted = resize_map(x, int(round(old_w * k)), int(round(old_h * k)))
        top, left = max(0, (height - fitted.shape[0]) // 2), max(0, (width - fitted.shape[1]) // 2)
        canvas[top:top + fitted.shape[0], left:left + fitted.shape[1]] = fitted[:height, :width]
        return canvas
    k = max(k_h, k_w)
    fitted = resize_map(x, int(round(old_w * k)), int(round(old_h * k)))
    top, left = max(0, (fitted.shape[0] - height) // 2), max(0, (fitted.shape[1] - width) // 2)
    return np.ascontiguousarray(fitted[top:top + height, left:left + width])
