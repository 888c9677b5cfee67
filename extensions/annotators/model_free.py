"""Preprocessors that need no weights, with the formulas of A1111's ControlNet extension (scripts/processor.py).

Each first resizes the picture so its short side is `resolution` (cubic up, area down) and pads to a
multiple of 64 by repeating edges, runs, then crops the padding off again (`resize_with_pad`).
"""
import cv2
import numpy as np


def pad64(x: int) -> int:
    return int(np.ceil(float(x) / 64.0) * 64 - x)


def resize_with_pad(image: np.ndarray, resolution: int):
    """(padded image, function that crops a result back to the resized size)."""
    h_raw, w_raw = image.shape[:2]
    k = float(resolution) / float(min(h_raw, w_raw))
    interpolation = cv2.INTER_CUBIC if k > 1 else cv2.INTER_AREA
    h, w = int(np.round(h_raw * k)), int(np.round(w_raw * k))
    resized = cv2.resize(image, (w, h), interpolation=interpolation)
    padded = np.pad(resized, [[0, pad64(h)], [0, pad64(w)], [0, 0]], mode="edge")
    return np.ascontiguousarray(padded), lambda result: np.ascontiguousarray(result[:h, :w])


def canny(image, resolution, low, high, weights_dir=None):
    img, crop = resize_with_pad(image, resolution)
    return crop(cv2.Canny(img, int(low), int(high)))


def invert(image, resolution=None, a=None, b=None, weights_dir=None):
    """For white-background drawings: black lines on white -> white lines on black. No resize, as A1111."""
    return 255 - image


def threshold(image, resolution, level, b=None, weights_dir=None):
    img, crop = resize_with_pad(image, resolution)
    result = np.zeros_like(img, dtype=np.uint8)
    result[np.min(img, axis=2) > level] = 255
    return crop(result)


def scribble_xdog(image, resolution, level, b=None, weights_dir=None):
    """Difference of Gaussians (sigma 0.5 and 5), thresholded: a scribble from any picture."""
    img, crop = resize_with_pad(image, resolution)
    g1 = cv2.GaussianBlur(img.astype(np.float32), (0, 0), 0.5)
    g2 = cv2.GaussianBlur(img.astype(np.float32), (0, 0), 5.0)
    dog = (255 - np.min(g2 - g1, axis=2)).clip(0, 255).astype(np.uint8)
    result = np.zeros_like(img, dtype=np.uint8)
    result[2 * (255 - dog) > level] = 255
    return crop(result)


def lineart_standard(image, resolution, a=None, b=None, weights_dir=None):
    """Darker-than-surroundings intensity (a Gaussian of sigma 6 minus the picture), normalised by its median."""
    img, crop = resize_with_pad(image, resolution)
    x = img.astype(np.float32)
    g = cv2.GaussianBlur(x, (0, 0), 6.0)
    intensity = np.min(g - x, axis=2).clip(0, 255)
    strong = intensity[intensity > 8]
    intensity /= max(16, np.median(strong) if strong.size else 0)
    intensity *= 127
    return crop(intensity.clip(0, 255).astype(np.uint8))


def shuffle(image, resolution, a=None, b=None, weights_dir=None, seed: int = 0):
    """Content shuffle (controlnet-aux's ContentShuffleDetector): the picture warped by a smooth random flow,
    seeded so a preview and a generation agree."""
    from controlnet_aux.shuffle import ContentShuffleDetector
    img, crop = resize_with_pad(image, resolution)
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        result = ContentShuffleDetector()(img, detect_resolution=img.shape[0], image_resolution=img.shape[0],
                                          output_type="np")
    finally:
        np.random.set_state(state)
    return crop(cv2.resize(result, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_NEAREST))


def mlsd_lsd(image, resolution, min_length, b=None, weights_dir=None):
    """Straight lines with OpenCV's line segment detector (no weights): a fallback for M-LSD, white lines on
    black like M-LSD's map; segments shorter than `min_length` pixels are dropped."""
    img, crop = resize_with_pad(image, resolution)
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    lines = cv2.createLineSegmentDetector().detect(gray)[0]
    result = np.zeros(gray.shape, np.uint8)
    for x1, y1, x2, y2 in ([] if lines is None else lines.reshape(-1, 4)):
        if np.hypot(x2 - x1, y2 - y1) >= min_length:
            cv2.line(result, (int(round(x1)), int(round(y1))), (int(round(x2)), int(round(y2))), 255, 1)
    return crop(result)


def normal_from_depth(depth: np.ndarray, background_threshold: float = 0.4, a: float = np.pi * 2.0) -> np.ndarray:
    """A1111's MiDaS normal map from a depth map (near = bright): Sobel gradients as x and y, a constant z,
    flat where depth is below the background threshold, normalised, to RGB."""
    depth = depth.astype(np.float32)
    depth_pt = depth - depth.min()
    depth_pt /= max(depth_pt.max(), 1e-6)
    x = cv2.Sobel(depth, cv2.CV_32F, 1, 0, ksize=3)
    y = cv2.Sobel(depth, cv2.CV_32F, 0, 1, ksize=3)
    z = np.ones_like(x) * a
    x[depth_pt < background_threshold] = 0
    y[depth_pt < background_threshold] = 0
    normal = np.stack([x, y, z], axis=2)
    normal /= np.sum(normal ** 2.0, axis=2, keepdims=True) ** 0.5
    return (normal * 127.5 + 127.5).clip(0, 255).astype(np.uint8)[:, :, ::-1]


def depth_to_normal(image, resolution, background_threshold, b=None, weights_dir=None):
    """The upload is a depth map (grey, near = bright): its normal map."""
    img, crop = resize_with_pad(image, resolution)
    return crop(normal_from_depth(img[:, :, 0].astype(np.float32), background_threshold))
