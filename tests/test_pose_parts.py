"""openpose_hand, openpose_face, openpose_faceonly and openpose_full on real photographs: MediaPipe's hand and
face models placed from the body's landmarks, mapped to OpenPose's 21 hand and 70 face keypoints; checked for
plausibility (hands at the ends of the arms, face points inside the head), and drawn as OpenPose draws them."""
import numpy as np
import pytest
import torch

from extensions import ExtensionAPI, load_extensions
from tests.photos import man_with_his_hands_showing


@pytest.fixture(scope="module")
def pose_api():
    """The MediaPipe models, fetched from the mediapipe wheel on PyPI as the README's set-up command does."""
    from extensions.annotators import pose_models
    pose_models.fetch()
    return load_extensions(ExtensionAPI(pose_models.DEFAULT_FOLDER))


def head_box(body: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A generous box around the head from the body's nose, eyes, ears and mouth (BlazePose 0-10)."""
    face = body[:11, :2]
    span = max(np.ptp(face[:, 0]), np.ptp(face[:, 1]), 1.0)
    return face.min(0) - [0.6 * span, 1.0 * span], face.max(0) + [0.6 * span, 1.2 * span]


def check_face(points: np.ndarray, body: np.ndarray):
    low, high = head_box(body)
    assert points.shape == (70, 2)
    assert ((points >= low) & (points <= high)).all(), (points.min(0), points.max(0), low, high)
    right_eye, left_eye = points[36:42].mean(0), points[42:48].mean(0)
    eyes = np.linalg.norm(body[2, :2] - body[5, :2])
    assert np.linalg.norm(right_eye - body[5, :2]) < 0.5 * eyes and np.linalg.norm(left_eye - body[2, :2]) < 0.5 * eyes
    assert points[8, 1] > points[57, 1] > points[33, 1] > points[27, 1] > points[19, 1]   # chin, lips, nose, brows
    assert points[0, 0] < points[30, 0] < points[16, 0]                                   # jaw from right to left


def test_hands_are_found_at_the_ends_of_the_arms(pose_api):
    from extensions.annotators.hands_face_mediapipe import HAND_LANDMARKS, hand
    from extensions.annotators.pose_mediapipe import landmarks
    picture = man_with_his_hands_showing()
    body = landmarks(picture, pose_api.weights_dir)
    for side, elbow in (("left", 13), ("right", 14)):
        points = hand(picture, body, side, pose_api.weights_dir)
        assert points is not None and points.shape == (21, 2), side
        wrist, forearm = body[HAND_LANDMARKS[side][0], :2], np.linalg.norm(body[HAND_LANDMARKS[side][0], :2]
                                                                              - body[elbow, :2])
        assert np.linalg.norm(points[0] - wrist) < 0.5 * forearm                     # its wrist on the arm's
        assert np.linalg.norm(points.mean(0) - body[elbow, :2]) > forearm            # beyond the wrist, not back
        assert np.linalg.norm(points - points[0], axis=1).max() < 1.2 * forearm     # a hand's size
        assert np.ptp(points, axis=0).max() > 0.2 * forearm                         # not a dot


def test_face_points_lie_on_the_face(pose_api):
    from skimage.data import astronaut
    from extensions.annotators.hands_face_mediapipe import face
    from extensions.annotators.pose_mediapipe import landmarks
    for picture in (astronaut(), man_with_his_hands_showing()):
        body = landmarks(picture, pose_api.weights_dir)
        check_face(face(picture, body, pose_api.weights_dir), body)


def test_the_four_preprocessors_draw_what_their_names_say(pose_api):
    picture = man_with_his_hands_showing()
    maps = {name: pose_api.run(name, picture, 512) for name in
            ("openpose_mediapipe", "openpose_hand", "openpose_face", "openpose_faceonly", "openpose_full")}
    white = {name: int((m == 255).all(axis=2).sum()) for name, m in maps.items()}        # the face's dots
    blue = {name: int((m == (0, 0, 255)).all(axis=2).sum()) - int((maps["openpose_mediapipe"] == (0, 0, 255)).all(
        axis=2).sum()) for name, m in maps.items()}         # the hands' keypoints, beyond the body's blue limb
    assert white["openpose_face"] > 500 and white["openpose_full"] > 500 and white["openpose_faceonly"] > 500
    assert white["openpose_hand"] == white["openpose_mediapipe"] == 0
    assert blue["openpose_hand"] > 300 and blue["openpose_full"] > 300 and blue["openpose_face"] == 0
    body_only = maps["openpose_mediapipe"]
    assert np.array_equal(maps["openpose_full"][body_only > 0], body_only[body_only > 0]) or \
        (maps["openpose_full"] == body_only).mean() > 0.97                    # the same body, with more drawn
    assert not (maps["openpose_faceonly"] == (255, 0, 0)).all(axis=2).any()  # no body keypoints (nose red)
    assert not pose_api.run("openpose_full", np.full((256, 256, 3), 128, np.uint8), 256).any()   # nobody


def test_openposes_own_networks_run_when_their_files_are_there(tmp_path):
    """With body_pose_model.pth, hand_pose_model.pth and facenet.pth in the folder (here random weights in their
    layout), openpose_full runs OpenPose's networks as A1111 does and needs none of MediaPipe's files."""
    from controlnet_aux.open_pose.face import FaceNet
    from controlnet_aux.open_pose.hand import handpose_model
    from controlnet_aux.open_pose.model import bodypose_model
    torch.manual_seed(0)
    for name, model, strip in (("body_pose_model.pth", bodypose_model(), True),
                               ("hand_pose_model.pth", handpose_model(), True), ("facenet.pth", FaceNet(), False)):
        state = {(".".join(k.split(".")[1:]) if strip else k): v for k, v in model.state_dict().items()}
        torch.save(state, tmp_path / name)     # OpenPose's files name layers without the stage prefix
    api = load_extensions(ExtensionAPI(tmp_path))
    assert api.availability("openpose_full") == "" and api.availability("openpose_mediapipe") != ""
    found = api.run("openpose_full", np.full((128, 96, 3), 90, np.uint8), 128)
    assert found.shape == (171, 128, 3) and found.dtype == np.uint8        # the short side at 128, as A1111
