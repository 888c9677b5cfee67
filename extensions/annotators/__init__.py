"""The built-in ControlNet annotators, registered through the same API as any extension (see ../__init__.py).

Weight-free ones always work (A1111's formulas); the rest name the file they need in the annotators folder.
"""
from extensions import Preprocessor, Slider

from . import model_free as free
from . import pose_mediapipe
from . import with_weights as nets

RESOLUTION_NOTE = "processor resolution: the short side the picture is resized to before detection"


def register(api) -> None:
    add = api.add_preprocessor
    add(Preprocessor("canny", ("canny",), free.canny, threshold_a=Slider("Canny Low Threshold", 1, 255, 100),
                     threshold_b=Slider("Canny High Threshold", 1, 255, 200)))
    add(Preprocessor("invert", ("canny", "mlsd", "scribble", "softedge", "lineart"), free.invert,
                     note="white background, dark lines -> the map ControlNets expect"))
    add(Preprocessor("threshold", ("scribble", "lineart"), free.threshold,
                     threshold_a=Slider("Binarization Threshold", 0, 255, 127)))
    add(Preprocessor("scribble_xdog", ("scribble",), free.scribble_xdog,
                     threshold_a=Slider("XDoG Threshold", 1, 64, 32)))
    add(Preprocessor("scribble_pidinet", ("scribble",), nets.scribble_pidinet, weights=("table5_pidinet.pth",)))
    add(Preprocessor("softedge_pidinet", ("softedge",), nets.softedge_pidinet, weights=("table5_pidinet.pth",)))
    add(Preprocessor("lineart_standard", ("lineart",), free.lineart_standard))
    add(Preprocessor("mlsd", ("mlsd",), nets.mlsd_with("mlsd_large_512_fp32.pth"),
                     weights=("mlsd_large_512_fp32.pth",), threshold_a=Slider("MLSD Value Threshold", 0.01, 2, 0.1, 0.01),
                     threshold_b=Slider("MLSD Distance Threshold", 0.01, 20, 0.1, 0.01)))
    add(Preprocessor("mlsd_tiny", ("mlsd",), nets.mlsd_with("mlsd_tiny_512_fp32.pth"),
                     weights=("mlsd_tiny_512_fp32.pth",), threshold_a=Slider("MLSD Value Threshold", 0.01, 2, 0.1, 0.01),
                     threshold_b=Slider("MLSD Distance Threshold", 0.01, 20, 0.1, 0.01)))
    add(Preprocessor("mlsd_opencv", ("mlsd",), free.mlsd_lsd, threshold_a=Slider("Minimum line length", 0, 200, 16),
                     note="OpenCV's line segment detector, a fallback when the M-LSD weights are absent"))
    add(Preprocessor("openpose_mediapipe", ("openpose",), nets.openpose_mediapipe,
                     weights=(pose_mediapipe.DETECTOR, pose_mediapipe.LANDMARKS),
                     weights_source="from the mediapipe wheel on PyPI: python -m extensions.annotators.pose_models",
                     note="MediaPipe's BlazePose (one person), drawn as the OpenPose skeleton"))
    add(Preprocessor("openpose", ("openpose",), nets.openpose, weights=("body_pose_model.pth",)))
    for name, body, hand, face in (("openpose_hand", True, True, False), ("openpose_face", True, False, True),
                                   ("openpose_faceonly", False, False, True), ("openpose_full", True, True, True)):
        parts = ("hand_landmark_full.tflite",) * hand + ("face_landmark.tflite",) * face
        add(Preprocessor(name, ("openpose",), nets.openpose_parts(body, hand, face),
                         weights=(pose_mediapipe.DETECTOR, pose_mediapipe.LANDMARKS, *parts),
                         alternative_weights=nets.original_pose_files(hand, face),
                         weights_source="from the mediapipe wheel on PyPI: python -m extensions.annotators.pose_models; "
                                        f"or OpenPose's own {', '.join(nets.original_pose_files(hand, face))}",
                         note="MediaPipe's pose, hand and face models drawn as OpenPose's keypoints (OpenPose's "
                              "own networks when their .pth files are in the annotators folder)"))
    add(Preprocessor("depth_to_normal", ("normal",), free.depth_to_normal,
                     threshold_a=Slider("Normal Background Threshold", 0, 1, 0.4, 0.01),
                     note="the upload is a depth map (near = bright); A1111's MiDaS normal formula"))
    add(Preprocessor("shuffle", ("shuffle",), free.shuffle))
    midas = ("dpt_hybrid-midas-501f0c75.pt",)
    add(Preprocessor("depth_midas", ("depth",), nets.depth_midas, weights=midas))
    add(Preprocessor("normal_midas", ("normal",), nets.normal_midas, weights=midas,
                     threshold_a=Slider("Normal Background Threshold", 0, 1, 0.4, 0.01)))
    add(Preprocessor("softedge_hed", ("softedge",), nets.hed_with(False), weights=("ControlNetHED.pth",)))
    add(Preprocessor("scribble_hed", ("scribble",), nets.hed_with(True), weights=("ControlNetHED.pth",)))
    lineart = ("sk_model.pth", "sk_model2.pth")
    add(Preprocessor("lineart_realistic", ("lineart",), nets.lineart_with(False), weights=lineart))
    add(Preprocessor("lineart_coarse", ("lineart",), nets.lineart_with(True), weights=lineart))
