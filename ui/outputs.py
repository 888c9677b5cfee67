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


SAMPLES_FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP"}   # A1111's samples_format


def encoded(image: Image.Image, infotext: str, fmt: str) -> dict:
    """Pillow save arguments: PNG with a `parameters` text chunk; JPEG / WebP with the text as the EXIF
    UserComment (UTF-16, A1111's way), which PNG Info reads back."""
    kind = SAMPLES_FORMATS[fmt]
    if kind == "PNG":
        info = PngInfo()
        info.add_text("parameters", infotext)
        return {"format": kind, "pnginfo": info}
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + infotext.encode("utf-16-be")
    return {"format": kind, "exif": exif.tobytes(), "quality": 95}


def save_result(result, outdir: Path, tab: str, fmt: str = "png", grids_only: bool = False) -> list[Path]:
    """A generation's pictures: grids (X/Y/Z) to <tab>-grids/, the pictures to <tab>-images/."""
    grids, pictures = result.images[:result.grids], ([] if grids_only else result.images[result.grids:])
    seed = result.seeds[0] if result.seeds else 0
    paths = [save_image(grid, text, seed, outdir, tab, fmt=fmt, kind="grids")
             for grid, text in zip(grids, result.infotexts)]
    return paths + [save_image(image, text, seed, outdir, tab, fmt=fmt)
                    for image, text, seed in zip(pictures, result.infotexts[result.grids:], result.seeds)]


def save_image(image: Image.Image, infotext: str, seed: int, outdir: Path, tab: str, today=None,
               fmt: str = "png", kind: str = "images") -> Path:
    folder = Path(outdir) / f"{tab}-{kind}" / (today or datetime.date.today()).isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    fmt = fmt.lower()
    fd, tmp = tempfile.mkstemp(suffix=f".{fmt}.tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            (image if fmt == "png" or image.mode == "RGB" else image.convert("RGB")).save(f, **encoded(
                image, infotext, fmt))
            f.flush()
            os.fsync(f.fileno())
        number = next_number(folder)
        while True:
            final = folder / f"{number:05d}-{seed}.{fmt}"
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
