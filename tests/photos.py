"""Real photographs of people for tests, from packages on PyPI: scikit-image's astronaut (installed), and the
street scene `bus.jpg` that the ultralytics wheel ships, read from the wheel without installing it. Nothing is
committed; a test without the package index skips and says why."""
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CACHE = Path(tempfile.gettempdir()) / "studio-test-photos"
WHEEL = "ultralytics==8.4.190"


def bus() -> np.ndarray:
    """ultralytics' bus.jpg (810x1080): people on a street beside a bus."""
    path = CACHE / "bus.jpg"
    if not path.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            fetched = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, WHEEL],
                                     capture_output=True, text=True)
            wheels = list(Path(tmp).glob("ultralytics-*.whl"))
            if fetched.returncode or not wheels:
                pytest.skip(f"no photograph of hands: {WHEEL} could not be fetched from the package index")
            with zipfile.ZipFile(wheels[0]) as archive:
                partial = path.with_suffix(".partial")
                partial.write_bytes(archive.read("ultralytics/assets/bus.jpg"))
                partial.replace(path)
    return np.asarray(Image.open(path).convert("RGB"))


def man_with_his_hands_showing() -> np.ndarray:
    """The man in the middle of bus.jpg, one hand on his chest and one at his side holding a phone."""
    return np.ascontiguousarray(bus()[350:900, 200:430])
