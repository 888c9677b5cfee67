"""Saving results as A1111 does: outputs/<tab>-images/YYYY-MM-DD/NNNNN-<seed>.png with the infotext inside.

Each file is written to a temporary name in the same folder and linked to its final name, which fails
instead of overwriting when the name is taken (then the next number is tried): a file is either
complete or absent, and two writers never clobber each other.
"""
import datetime
import os
import re
import tempfile
from pathlib import Path

from PIL import Image
from PIL.PngImagePlugin import PngInfo

_NUMBERED = re.compile(r"^(\d+)-")


def next_number(folder: Path) -> int:
    numbers = [int(m.group(1)) for p in folder.iterdir() if (m := _NUMBERED.match(p.name))] if folder.is_dir() else []
    return max(numbers, default=-1) + 1


def save_image(image: Image.Image, infotext: str, seed: int, outdir: Path, tab: str, today=None) -> Path:
    folder = Path(outdir) / f"{tab}-images" / (today or datetime.date.today()).isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    info = PngInfo()
    info.add_text("parameters", infotext)
    fd, tmp = tempfile.mkstemp(suffix=".png.tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            image.save(f, format="PNG", pnginfo=info)
            f.flush()
            os.fsync(f.fileno())
        number = next_number(folder)
        while True:
            final = folder / f"{number:05d}-{seed}.png"
            try:
                os.link(tmp, final)          # atomic, and refuses an existing name
                return final
            except FileExistsError:
                number += 1
    finally:
        os.unlink(tmp)
