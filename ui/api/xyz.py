"""A1111's X/Y/Z plot through the API: `script_name: "x/y/z plot"` with `script_args` as A1111 takes them."""
from engine.xyz import Axis, XYZError, axis_kind, parse_values

from .convert import PayloadError

NAMES = ("x/y/z plot", "xyz plot", "x/y/z")
ARGS = ["X type", "X values", "X values (list)", "Y type", "Y values", "Y values (list)", "Z type", "Z values",
        "Z values (list)", "Draw legend", "Include Sub Images", "Include Sub Grids", "Keep -1 for seeds",
        "Vary seeds for X", "Vary seeds for Y", "Vary seeds for Z", "Grid margins (px)", "Use text inputs"]


def is_xyz(script_name: str | None) -> bool:
    return bool(script_name) and script_name.strip().lower() in NAMES


def xyz_settings(args: list, img2img: bool) -> dict:
    """A1111 1.10's 18 arguments (x type, x values, x values from the dropdown, the same for y and z, draw
    legend, include lone images, include sub grids, no fixed seeds, vary seeds x / y / z, margin size, csv
    mode), or the 15 of the versions before vary seeds. Axis types are indices into A1111's list for the tab,
    or labels. Values: the dropdown's list where given, else the text."""
    if len(args) not in (15, 16, 18, 19):
        raise PayloadError(f"script_args: X/Y/Z plot takes A1111's 18 arguments (or the older 15), not {len(args)}")
    axes = []
    try:
        for i in range(3):
            kind = axis_kind(args[3 * i], img2img)
            text, listed = args[3 * i + 1], args[3 * i + 2]
            values = parse_values(kind, listed if isinstance(listed, list) and listed else (text or ""))
            axes.append(Axis(kind, values))
    except XYZError as e:
        raise PayloadError(f"script_args: {e}") from None
    newer = len(args) >= 18
    margin = args[16] if newer else args[13]
    return {"axes": axes, "legend": bool(args[9]),
            "include_lone": bool(args[10]), "include_sub_grids": bool(args[11]), "keep_random_seeds": bool(args[12]),
            "vary_seeds": tuple(bool(v) for v in args[13:16]) if newer else (False, False, False),
            "margin": int(margin or 0)}
