"""Put MediaPipe's BlazePose, hand-landmark and face-mesh models into the annotators folder, from the
mediapipe 0.10.21 wheel on PyPI.

    python -m extensions.annotators.pose_models [folder]     # default: models/annotators

The wheel is downloaded from the package index (not installed: it pins numpy<2) and only the four model files
are kept, checked against their known SHA-256. Does nothing when they are already there. Never fails the
command it is part of: without the package index it says so and openpose_mediapipe stays unavailable.
"""
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = ["mediapipe==0.10.21", "--only-binary=:all:", "--platform", "manylinux_2_28_x86_64",
         "--python-version", "3.11"]
FILES = {   # name in the annotators folder -> (path in the wheel, sha256)
    "pose_detection.tflite": ("mediapipe/modules/pose_detection/pose_detection.tflite",
                              "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c"),
    "pose_landmark_full.tflite": ("mediapipe/modules/pose_landmark/pose_landmark_full.tflite",
                                  "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f"),
    "hand_landmark_full.tflite": ("mediapipe/modules/hand_landmark/hand_landmark_full.tflite",
                                  "11c272b891e1a99ab034208e23937a8008388cf11ed2a9d776ed3d01d0ba00e3"),
    "face_landmark.tflite": ("mediapipe/modules/face_landmark/face_landmark.tflite",
                             "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814"),
}
DEFAULT_FOLDER = Path(__file__).resolve().parents[2] / "models" / "annotators"


def present(folder: Path) -> bool:
    return all((Path(folder) / name).is_file() for name in FILES)


def fetch(folder: Path = DEFAULT_FOLDER) -> None:
    """Download the wheel, extract and verify the models into `folder` (each written atomically)."""
    folder = Path(folder)
    if present(folder):
        return
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, *WHEEL],
                       check=True)
        wheel = next(Path(tmp).glob("mediapipe-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            for name, (inside, digest) in FILES.items():
                data = archive.read(inside)
                if hashlib.sha256(data).hexdigest() != digest:
                    raise RuntimeError(f"{inside} in {wheel.name} is not the expected file (SHA-256 differs)")
                partial = folder / (name + ".partial")
                partial.write_bytes(data)
                partial.replace(folder / name)


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    folder = Path(args[0]) if args else DEFAULT_FOLDER
    try:
        fetch(folder)
    except (OSError, subprocess.CalledProcessError, RuntimeError, StopIteration) as e:
        print(f"MediaPipe models not fetched ({e}); the openpose_mediapipe and openpose_hand/face/full "
              "preprocessors stay unavailable.",
              file=sys.stderr)
        return 0
    print(f"MediaPipe pose, hand and face models in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
