"""Hands and face for OpenPose maps, from MediaPipe's hand-landmark and face-mesh models, run with LiteRT.

The two models (`hand_landmark_full.tflite`, `face_landmark.tflite`, Apache-2.0) come from the same mediapipe
0.10.21 wheel as the BlazePose ones (`python -m extensions.annotators.pose_models`). The crops are placed as
MediaPipe Holistic places them, from the body's landmarks: a hand's square from its wrist, index and pinky
knuckles (the middle knuckle estimated at (2 index + pinky) / 3, turned so the fingers point up), the face's from
the eyes and the mouth. A hand gives 21 points, the same 21 as OpenPose's hand keypoints and in the same order;
the face mesh gives 468, of which the 68 below are OpenPose's face keypoints, plus the two pupils.
"""
import colorsys
import math
from pathlib import Path

import cv2
import numpy as np

from .pose_mediapipe import _run, _sigmoid, square_crop

HAND, FACE = "hand_landmark_full.tflite", "face_landmark.tflite"
HAND_SIZE, FACE_SIZE = 224, 192
# BlazePose landmarks of each hand: wrist, pinky knuckle, index knuckle (left hand first, as OpenPose's order)
HAND_LANDMARKS = {"left": (15, 17, 19), "right": (16, 18, 20)}
# face mesh vertex (or the mean of two) for each of OpenPose's 68 face keypoints, in OpenPose's order: the jaw
# from the face's right to its left, the brows, the nose bridge and base, the eyes from their outer corners,
# the outer then the inner lips from the mouth's right corner
OPENPOSE_FACE_FROM_MESH = [
    127, 234, 93, (132, 58), (58, 172), 136, 150, 176, 152, 400, 379, 365, (397, 288), 361, 323, 454, 356,
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
    (168, 6), (197, 195), 5, 4, 75, 97, 2, 326, 305,
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181,
    78, 82, 13, 312, 308, 317, 14, 87]
PUPILS = [(33, 133, 159, 145), (362, 263, 386, 374)]   # each eye's corners and lids: their mean is the pupil


def up_rotation(start: np.ndarray, end: np.ndarray) -> float:
    """The crop's rotation that makes the direction start -> end point up."""
    return math.pi / 2 - math.atan2(-(end[1] - start[1]), end[0] - start[0])


def landmarks_in(rgb: np.ndarray, weights: Path, to_crop: np.ndarray, size: int) -> tuple[np.ndarray, dict]:
    """The model's (N, 2) points mapped back to the picture, and its other outputs."""
    crop = cv2.warpAffine(rgb, to_crop, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    out = _run(weights, crop.astype(np.float32) / 255.0)
    points = max(out.values(), key=np.size)        # the landmarks; the other outputs are scores
    back = cv2.invertAffineTransform(to_crop)
    xy = points.reshape(-1, 3)[:, :2] @ back[:, :2].T + back[:, 2]
    return xy, out


def hand(rgb: np.ndarray, body: np.ndarray, side: str, weights_dir: Path, min_score: float = 0.5):
    """(21, 2) hand keypoints in pixels for the body's `side` hand, or None (not visible, or no hand there)."""
    wrist, pinky, index = (body[i] for i in HAND_LANDMARKS[side])
    if min(wrist[2], pinky[2], index[2]) < 0.5:
        return None
    knuckle = (2 * index[:2] + pinky[:2]) / 3
    palm = float(np.hypot(*(knuckle - wrist[:2])))
    if palm < 2:
        return None
    side_length = 3.0 * palm                      # twice the palm length, x1.5: the whole hand with a margin
    rotation = up_rotation(wrist[:2], knuckle)
    centre = knuckle + 0.1 * side_length * np.array([math.sin(rotation), -math.cos(rotation)])
    points, out = landmarks_in(rgb, Path(weights_dir) / HAND, square_crop(centre, side_length, rotation, HAND_SIZE),
                               HAND_SIZE)
    presence = float(out["Identity_1"].reshape(-1)[0])
    return points if presence >= min_score else None


def face(rgb: np.ndarray, body: np.ndarray, weights_dir: Path, min_score: float = 0.5):
    """(70, 2) OpenPose face keypoints in pixels (68 and the two pupils), or None."""
    eyes, mouth, ears = body[[2, 5], :2].mean(0), body[[9, 10], :2].mean(0), body[[7, 8]]
    if min(body[[2, 5, 9, 10], 2]) < 0.5:
        return None
    height = float(np.hypot(*(mouth - eyes)))
    width = float(np.hypot(*(ears[0, :2] - ears[1, :2])))
    side_length = 1.5 * max(3.2 * height, width)   # the face box (brows to chin, cheek to cheek), x1.5
    if side_length < 8:
        return None
    centre = eyes + 0.55 * (mouth - eyes)
    mesh, out = landmarks_in(rgb, Path(weights_dir) / FACE,
                             square_crop(centre, side_length, up_rotation(mouth, eyes), FACE_SIZE), FACE_SIZE)
    if float(_sigmoid(min(out.values(), key=np.size).reshape(-1)[0])) < min_score:   # "a face is there"
        return None
    points = [mesh[list(i)].mean(0) if isinstance(i, tuple) else mesh[i] for i in OPENPOSE_FACE_FROM_MESH]
    return np.array(points + [mesh[list(eye)].mean(0) for eye in PUPILS])


HAND_EDGES = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (0, 9), (9, 10), (10, 11), (11, 12),
              (0, 13), (13, 14), (14, 15), (15, 16), (0, 17), (17, 18), (18, 19), (19, 20)]


def draw_hand(canvas: np.ndarray, points: np.ndarray) -> np.ndarray:
    """A hand as the openpose preprocessors draw it (controlnet_aux's draw_handpose, which needs matplotlib
    for one colour conversion): each bone in its hue around the colour wheel, 2 px, a (0, 0, 255) dot on each
    keypoint (blue here: OpenPose drew red in BGR, and the extension kept the numbers on RGB maps)."""
    found = [x > 0.01 and y > 0.01 for x, y in points]        # OpenPose marks a keypoint it missed with -1
    for i, (a, b) in enumerate(HAND_EDGES):
        if found[a] and found[b]:
            colour = [255 * c for c in colorsys.hsv_to_rgb(i / len(HAND_EDGES), 1.0, 1.0)]
            cv2.line(canvas, tuple(int(v) for v in points[a]), tuple(int(v) for v in points[b]), colour, thickness=2)
    for (x, y), ok in zip(points, found):
        if ok:
            cv2.circle(canvas, (int(x), int(y)), 4, (0, 0, 255), thickness=-1)
    return canvas


def draw_person(canvas: np.ndarray, body: list | None, hands: list, face_points: np.ndarray | None) -> np.ndarray:
    """OpenPose's map of one person: `body` as controlnet_aux Keypoints (normalised), hands and face in pixels."""
    from controlnet_aux.open_pose.body import Keypoint
    from controlnet_aux.open_pose.util import draw_bodypose, draw_facepose
    h, w = canvas.shape[:2]
    if body is not None:
        canvas = draw_bodypose(canvas, body)
    for points in hands:
        if points is not None:
            canvas = draw_hand(canvas, points)
    if face_points is not None:
        canvas = draw_facepose(canvas, [Keypoint(x / w, y / h) for x, y in face_points])
    return canvas


def openpose_map(rgb: np.ndarray, weights_dir: Path, body: bool = True, hands: bool = False,
                 face_points: bool = False) -> np.ndarray:
    """The person's OpenPose map on black: the body skeleton, the hands' 21-point skeletons, the face's 70
    white dots, as asked (all black if nobody is found)."""
    from .pose_mediapipe import landmarks, openpose_keypoints
    h, w = rgb.shape[:2]
    found = landmarks(rgb, weights_dir)
    if found is None:
        return np.zeros_like(rgb)
    both = [hand(rgb, found, side, weights_dir) for side in ("left", "right")] if hands else []
    return draw_person(np.zeros_like(rgb), openpose_keypoints(found, w, h) if body else None, both,
                       face(rgb, found, weights_dir) if face_points else None)
