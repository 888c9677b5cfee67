"""Saving results as A1111 does: outputs/<tab>-images/YYYY-MM-DD/NNNNN-<seed>.png with the infotext inside.

Each picture is written whole to a temporary file in the same folder, then given its final name in one step
that never replaces a file already there (when the name is taken the next number is tried), so a picture is
either complete or absent and two writers never clobber each other:

- by a hard link, which fails on a taken name;
- where the file system has no hard links (FAT, exFAT, some network shares), by first claiming the name with an
  exclusive create (O_EXCL) of `NNNNN-<seed>.claim` beside it, then moving the finished file onto the name. Every
  writer of that name holds its claim first, so the move cannot replace anyone's picture; a writer killed
  midway leaves a .tmp or .claim file behind, never a half-written .png.
"""
import datetime
import errno
import os
import re
import tempfile
from pathlib import Path

from PIL import Image
from PIL.PngImagePlugin import PngInfo

_NUMBERED = re.compile(r"^(\d+)-")
NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK, errno.EXDEV,
                 errno.EINVAL}


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
                place(tmp, final)
                return final
            except FileExistsError:
                number += 1
    finally:
        if os.path.exists(tmp):          # still there unless it was moved into place
            os.unlink(tmp)


def place(tmp: str, final: Path) -> None:
    """Give the finished file `tmp` the name `final` atomically; FileExistsError when the name is taken."""
    try:
        os.link(tmp, final)
        return
    except FileExistsError:
        raise
    except OSError as e:
        if e.errno not in NO_HARD_LINKS:
            raise
    claim = final.with_suffix(".claim")
    os.close(os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY))     # FileExistsError: another writer's
    try:
        if final.exists():
            raise FileExistsError(errno.EEXIST, "taken", str(final))
        os.replace(tmp, final)
    finally:
        os.unlink(claim)
