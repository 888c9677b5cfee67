"""Preprocessors that read A1111's annotator weights from the annotators folder, run by controlnet-aux.

Weights load with torch.load(weights_only=True) into controlnet-aux's own network classes; nothing is ever
downloaded. Each model is built once per file and kept.
"""
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from extensions import missing_in

from .model_free import resize_with_pad


def _weights(path: Path) -> dict:
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("state_dict", state) if isinstance(state, dict) else state


@lru_cache(maxsize=4)
def _pidinet(path: Path):
    from controlnet_aux.pidi import PidiNetDetector
    from controlnet_aux.pidi.model import pidinet
    net = pidinet()
    net.load_state_dict({k.replace("module.", ""): v for k, v in _weights(path).items()})
    return PidiNetDetector(net.eval())


@lru_cache(maxsize=4)
def _mlsd(path: Path):
    from controlnet_aux.mlsd import MLSDdetector
    from controlnet_aux.mlsd.models.mbv2_mlsd_large import MobileV2_MLSD_Large
    from controlnet_aux.mlsd.models.mbv2_mlsd_tiny import MobileV2_MLSD_Tiny
    model = (MobileV2_MLSD_Tiny if "tiny" in path.name else MobileV2_MLSD_Large)()
    model.load_state_dict(_weights(path), strict=True)
    return MLSDdetector(model.eval())


@lru_cache(maxsize=2)
def _openpose_body(path: Path):
    from controlnet_aux.open_pose import OpenposeDetector
    from controlnet_aux.open_pose.body import Body
    return OpenposeDetector(Body(str(path)))


def _at(image, resolution, detect):
    """Run `detect(padded picture) -> map` at the processor resolution, return the unpadded map."""
    img, crop = resize_with_pad(image, resolution)
    with torch.no_grad():
        result = np.asarray(detect(img))
    return crop(result)


def softedge_pidinet(image, resolution, a=None, b=None, weights_dir=None):
    model = _pidinet(Path(weights_dir) / "table5_pidinet.pth")
    return _at(image, resolution, lambda img: model(img, detect_resolution=img.shape[0],
                                                    image_resolution=img.shape[0], output_type="np"))


def scribble_pidinet(image, resolution, a=None, b=None, weights_dir=None):
    model = _pidinet(Path(weights_dir) / "table5_pidinet.pth")
    return _at(image, resolution, lambda img: model(img, detect_resolution=img.shape[0], scribble=True,
                                                    image_resolution=img.shape[0], output_type="np"))


def mlsd_with(file_name):
    def mlsd(image, resolution, value_threshold, distance_threshold, weights_dir=None):
        model = _mlsd(Path(weights_dir) / file_name)
        return _at(image, resolution, lambda img: model(img, thr_v=value_threshold, thr_d=distance_threshold,
                                                        detect_resolution=img.shape[0],
                                                        image_resolution=img.shape[0], output_type="np"))
    return mlsd


def openpose(image, resolution, a=None, b=None, weights_dir=None):
    model = _openpose_body(Path(weights_dir) / "body_pose_model.pth")
    return _at(image, resolution, lambda img: model(img, detect_resolution=img.shape[0],
                                                    image_resolution=img.shape[0], include_body=True,
                                                    output_type="np"))


ORIGINAL_POSE = {"body": "body_pose_model.pth", "hand": "hand_pose_model.pth", "face": "facenet.pth"}


@lru_cache(maxsize=2)
def _openpose_original(folder: Path, hand: bool, face: bool):
    from controlnet_aux.open_pose import OpenposeDetector
    from controlnet_aux.open_pose.body import Body
    from controlnet_aux.open_pose.face import Face
    from controlnet_aux.open_pose.hand import Hand
    return OpenposeDetector(Body(str(folder / ORIGINAL_POSE["body"])),
                            Hand(str(folder / ORIGINAL_POSE["hand"])) if hand else None,
                            Face(str(folder / ORIGINAL_POSE["face"])) if face else None)


def original_pose_files(hand: bool, face: bool) -> tuple[str, ...]:
    return tuple(ORIGINAL_POSE[k] for k, wanted in (("body", True), ("hand", hand), ("face", face)) if wanted)


def _original_pose_map(img, folder: Path, body: bool, hand: bool, face: bool):
    """OpenPose's own body, hand and face networks, as A1111's openpose_full runs them (controlnet_aux)."""
    from .hands_face_mediapipe import draw_person
    h, w = img.shape[:2]
    canvas = np.zeros_like(img)
    scale = np.array([w, h])
    as_pixels = lambda points: None if points is None else np.array([(k.x, k.y) for k in points]) * scale
    for pose in _openpose_original(folder, hand, face).detect_poses(img, include_hand=hand, include_face=face):
        canvas = draw_person(canvas, pose.body.keypoints if body else None,
                             [as_pixels(pose.left_hand), as_pixels(pose.right_hand)], as_pixels(pose.face))
    return canvas


def openpose_parts(body: bool, hand: bool, face: bool):
    """openpose_hand / _face / _faceonly / _full: OpenPose's original networks when their files are in the
    annotators folder, else MediaPipe's BlazePose, hand-landmark and face-mesh models."""
    def run(image, resolution, a=None, b=None, weights_dir=None):
        folder = Path(weights_dir)
        if not missing_in(folder, original_pose_files(hand, face)):
            return _at(image, resolution, lambda img: _original_pose_map(img, folder, body, hand, face))
        from .hands_face_mediapipe import openpose_map
        return _at(image, resolution, lambda img: openpose_map(img, folder, body, hand, face))
    return run


def openpose_mediapipe(image, resolution, a=None, b=None, weights_dir=None):
    from .pose_mediapipe import pose_map
    return _at(image, resolution, lambda img: pose_map(img, Path(weights_dir)))


@lru_cache(maxsize=2)
def _detector(kind: str, folder: Path):
    """controlnet-aux detectors that take a local folder (never a hub name: a missing file fails, no download)."""
    if kind == "midas":
        from controlnet_aux.midas import MidasDetector
        return MidasDetector.from_pretrained(str(folder), filename="dpt_hybrid-midas-501f0c75.pt")
    if kind == "hed":
        from controlnet_aux.hed import HEDdetector
        return HEDdetector.from_pretrained(str(folder), filename="ControlNetHED.pth")
    from controlnet_aux.lineart import LineartDetector
    return LineartDetector.from_pretrained(str(folder), filename="sk_model.pth", coarse_filename="sk_model2.pth")


def depth_midas(image, resolution, a=None, b=None, weights_dir=None):
    model = _detector("midas", Path(weights_dir))
    return _at(image, resolution, lambda img: model(img, detect_resolution=img.shape[0],
                                                    image_resolution=img.shape[0], output_type="np"))


def normal_midas(image, resolution, background_threshold, b=None, weights_dir=None):
    model = _detector("midas", Path(weights_dir))
    return _at(image, resolution, lambda img: model(img, bg_th=background_threshold, depth_and_normal=True,
                                                    detect_resolution=img.shape[0], image_resolution=img.shape[0],
                                                    output_type="np")[1])


def hed_with(scribble: bool):
    def hed(image, resolution, a=None, b=None, weights_dir=None):
        model = _detector("hed", Path(weights_dir))
        return _at(image, resolution, lambda img: model(img, detect_resolution=img.shape[0], scribble=scribble,
                                                        image_resolution=img.shape[0], output_type="np"))
    return hed


def lineart_with(coarse: bool):
    def lineart(image, resolution, a=None, b=None, weights_dir=None):
        model = _detector("lineart", Path(weights_dir))
        return _at(image, resolution, lambda img: model(img, coarse=coarse, detect_resolution=img.shape[0],
                                                        image_resolution=img.shape[0], output_type="np"))
    return lineart
