"""A1111's SD upscale through the API: `script_name: "sd upscale"`, `script_args: [info, overlap, upscaler
index, scale factor]` (the upscaler by its index in A1111's list - None, Lanczos, Nearest, models - or name)."""
from .convert import PayloadError


def is_sd_upscale(script_name: str | None) -> bool:
    return bool(script_name) and script_name.strip().lower() in ("sd upscale", "sd_upscale")


def sd_upscale_settings(args: list, upscalers: list[str]) -> tuple[str, float, int]:
    if len(args) != 4:
        raise PayloadError(f"script_args: SD upscale takes A1111's 4 arguments (info, overlap, upscaler index, "
                           f"scale factor), not {len(args)}")
    _, overlap, which, scale = args
    if isinstance(which, int) and not isinstance(which, bool):
        if not 0 <= which < len(upscalers):
            raise PayloadError(f"script_args: upscaler index {which}; the list has {len(upscalers)}: "
                               f"{', '.join(upscalers)}")
        which = upscalers[which]
    if which not in upscalers:
        raise PayloadError(f"script_args: no upscaler {which!r}; choose one of: {', '.join(upscalers)}")
    try:
        return which, float(scale), int(overlap)
    except (TypeError, ValueError):
        raise PayloadError("script_args: overlap and scale factor must be numbers") from None
