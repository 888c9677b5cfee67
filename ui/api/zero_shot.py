"""Zero-shot editing through the API: `alwayson_scripts: {"zero-shot edit": {"args": [task, scale, left, top,
right, bottom]}}` on /sdapi/v1/img2img, the picture being `init_images[0]` (engine.zero_shot).

task: "colorize", "super-resolve" or "outpaint" (any case); scale: 2, 4 or 8 (super-resolve); left, top, right,
bottom: pixels added on each side (outpaint). Trailing arguments may be left out: scale 4, no borders. The
picture made is the task's own size (width and height are not read) and starts from the top of the schedule
when denoising_strength is 1, as the paper's algorithm does.
"""
from PIL import Image

from engine import ZeroShotEdit
from engine.zero_shot import TASKS

from .convert import PayloadError

NAME = "zero-shot edit"
ARGS = ("task", "scale", "left", "top", "right", "bottom")


def zero_shot_edit(entry, picture: Image.Image | None, tab: str) -> ZeroShotEdit | None:
    """The edit asked for by `alwayson_scripts["zero-shot edit"]`, or None when absent or disabled."""
    if entry is None:
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("args", []), list):
        raise PayloadError(f'alwayson_scripts.{NAME}: expected {{"args": [task, scale, left, top, right, bottom]}}')
    args = entry.get("args") or []
    if not args or args[0] in (None, "", "None"):
        return None
    if tab != "img2img" or picture is None:
        raise PayloadError(f"alwayson_scripts.{NAME}: an img2img script; give the picture in init_images")
    if len(args) > len(ARGS):
        raise PayloadError(f"alwayson_scripts.{NAME}: at most {len(ARGS)} args ({', '.join(ARGS)})")
    tasks = {t.lower(): t for t in TASKS}
    task = tasks.get(str(args[0]).strip().lower())
    if task is None:
        raise PayloadError(f"alwayson_scripts.{NAME}: task {args[0]!r}; choose one of: {', '.join(tasks)}")
    numbers = [*args[1:], *[None] * (len(ARGS) - len(args))]
    defaults = (4, 0, 0, 0, 0)
    try:
        scale, *extend = (default if value is None else int(value) for value, default in zip(numbers, defaults))
    except (TypeError, ValueError):
        raise PayloadError(f"alwayson_scripts.{NAME}: scale and borders must be whole numbers") from None
    return ZeroShotEdit(task, picture, scale=scale, extend=tuple(extend))
