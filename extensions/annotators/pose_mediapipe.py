"""OpenPose-style pose maps from MediaPipe's BlazePose models (Bazarevsky et al. 2020), run with LiteRT.

The two models (`pose_detection.tflite`, `pose_landmark_full.tflite`, Apache-2.0) ship inside the
mediapipe 0.10.21 wheel on PyPI; `python -m extensions.annotators.pose_models` copies them from that wheel into
the annotators folder. The wheel itself is not installed (it pins numpy<2 and does not import beside numpy 2),
so the graph MediaPipe builds around the models is written out here, with MediaPipe's own settings:
detector on a 224x224 letterbox -> the body's rotated square (hip centre, twice the hip-to-scale-point
distance, x1.25) -> 33 landmarks on its 256x256 crop -> the 18 OpenPose keypoints, drawn as OpenPose's coloured
skeleton. One person per picture, as BlazePose.
"""
import math
import threading
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

DETECTOR, LANDMARKS = "pose_detection.tflite", "pose_landmark_full.tflite"
# BlazePose landmark index for each OpenPose body keypoint; the neck is the shoulders' midpoint
OPENPOSE_FROM_BLAZEPOSE = [0, "neck", 12, 14, 16, 11, 13, 15, 24, 26, 28, 23, 25, 27, 5, 2, 8, 7]
# a LiteRT interpreter holds its tensors in place: two threads on one (two browser tabs, or a tab and the API)
# would write each other's inputs, and LiteRT refuses to invoke while another thread reads its outputs
_INTERPRETER_LOCK = threading.Lock()


@lru_cache(maxsize=8)
def _interpreter(path: str):
    from ai_edge_litert.interpreter import Interpreter
    interpreter = Interpreter(model_path=path)
    interpreter.allocate_tensors()
    return interpreter


def _run(path: Path, tensor: np.ndarray) -> dict[str, np.ndarray]:
    with _INTERPRETER_LOCK:
        interpreter = _interpreter(str(path))
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], tensor[None].astype(np.float32))
        interpreter.invoke()
        return {d["name"]: interpreter.get_tensor(d["index"])[0] for d in interpreter.get_output_details()}


@lru_cache(maxsize=1)
def _anchors() -> np.ndarray:
    """(2254, 2) anchor centres of MediaPipe's SsdAnchorsCalculator for pose detection (fixed size 1)."""
    centres = []
    for stride, per_cell in ((8, 2), (16, 2), (32, 6)):      # the three stride-32 layers share their cells
        side = math.ceil(224 / stride)
        for y in range(side):
            for x in range(side):
                centres += [((x + 0.5) / side, (y + 0.5) / side)] * per_cell
    return np.array(centres, np.float32)


def detect_body(rgb: np.ndarray, weights_dir: Path, min_score: float = 0.5) -> np.ndarray | None:
    """The best body detection's 4 keypoints in pixels (hip centre, scale point, ...), or None."""
    h, w = rgb.shape[:2]
    scale = 224 / max(h, w)
    letterbox = np.zeros((224, 224, 3), np.float32)
    resized = cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    top, left = (224 - resized.shape[0]) // 2, (224 - resized.shape[1]) // 2
    letterbox[top:top + resized.shape[0], left:left + resized.shape[1]] = resized / 127.5 - 1.0
    out = _run(Path(weights_dir) / DETECTOR, letterbox)
    raw, scores = out["Identity"], _sigmoid(out["Identity_1"][:, 0])
    if scores.max() < min_score:
        return None
    anchors = _anchors()
    boxes = raw[:, :4] / 224.0
    centres = boxes[:, :2] + anchors
    keypoints = raw[:, 4:].reshape(-1, 4, 2) / 224.0 + anchors[:, None, :]
    best = int(np.argmax(scores))
    # weighted non-maximum suppression: average the detections overlapping the best one (IoU > 0.3)
    overlap = _iou(np.concatenate([centres, boxes[:, 2:]], 1), np.concatenate([centres[best], boxes[best, 2:]]))
    chosen = (overlap > 0.3) & (scores >= min_score)
    weights = scores[chosen] / scores[chosen].sum()
    points = (keypoints[chosen] * weights[:, None, None]).sum(0) * 224.0       # letterbox pixels
    return (points - [left, top]) / scale


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(0.5 * x))


def _iou(boxes: np.ndarray, box: np.ndarray) -> np.ndarray:
    """IoU of (N, 4) centre-size boxes with one box."""
    lo = np.maximum(boxes[:, :2] - boxes[:, 2:] / 2, box[:2] - box[2:] / 2)
    hi = np.minimum(boxes[:, :2] + boxes[:, 2:] / 2, box[:2] + box[2:] / 2)
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    return inter / (np.prod(boxes[:, 2:], axis=1) + np.prod(box[2:]) - inter + 1e-9)


def square_crop(centre, side: float, rotation: float, size: int) -> np.ndarray:
    """The 2x3 affine map from the picture to a size x size crop of the square of `side` pixels about `centre`,
    turned by `rotation` (0: the crop's up is the picture's up)."""
    (x0, y0), c, s = centre, math.cos(rotation), math.sin(rotation)
    corners = [(x0 + side * (c * u - s * v), y0 + side * (s * u + c * v))
               for u, v in ((-0.5, -0.5), (0.5, -0.5), (-0.5, 0.5))]      # top left, top right, bottom left
    return cv2.getAffineTransform(np.float32(corners), np.float32([[0, 0], [size, 0], [0, size]]))


def body_crop(keypoints: np.ndarray) -> np.ndarray:
    """The 2x3 affine map from the picture to the 256x256 crop of the body's rotated square."""
    (x0, y0), (x1, y1) = keypoints[0], keypoints[1]
    size = 2 * math.hypot(x1 - x0, y1 - y0) * 1.25
    rotation = math.pi / 2 - math.atan2(-(y1 - y0), x1 - x0)
    return square_crop((x0, y0), size, rotation, 256)


def landmarks(rgb: np.ndarray, weights_dir: Path) -> np.ndarray | None:
    """(33, 3) BlazePose landmarks: x, y in pixels and visibility in [0, 1]; None when nobody is found."""
    found = detect_body(rgb, weights_dir)
    if found is None:
        return None
    to_crop = body_crop(found)
    crop = cv2.warpAffine(rgb, to_crop, (256, 256), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    out = _run(Path(weights_dir) / LANDMARKS, crop.astype(np.float32) / 255.0)
    if float(out["Identity_1"][0]) < 0.5:        # the model's own "a body is in this crop" score
        return None
    raw = out["Identity"].reshape(39, 5)[:33]
    back = cv2.invertAffineTransform(to_crop)
    xy = raw[:, :2] @ back[:, :2].T + back[:, 2]
    visibility = _sigmoid(raw[:, 3])
    return np.concatenate([xy, visibility[:, None]], 1)


def openpose_keypoints(points: np.ndarray, width: int, height: int, min_visibility: float = 0.5) -> list:
    """The 18 OpenPose body keypoints (normalised, None where not visible) from BlazePose landmarks."""
    from controlnet_aux.open_pose.body import Keypoint
    keypoints = []
    for index in OPENPOSE_FROM_BLAZEPOSE:
        if index == "neck":
            x, y, v = (points[11] + points[12]) / 2
            v = min(points[11, 2], points[12, 2])
        else:
            x, y, v = points[index]
        inside = 0 <= x < width and 0 <= y < height
        keypoints.append(Keypoint(x / width, y / height) if v >= min_visibility and inside else None)
    return keypoints


def pose_map(rgb: np.ndarray, weights_dir: Path) -> np.ndarray:
    """OpenPose's coloured skeleton of the picture's person on black (all black if nobody is found)."""
    from controlnet_aux.open_pose.util import draw_bodypose
    canvas = np.zeros_like(rgb)
    points = landmarks(rgb, weights_dir)
    if points is not None:
        canvas = draw_bodypose(canvas, openpose_keypoints(points, rgb.shape[1], rgb.shape[0]))
    return canvas

