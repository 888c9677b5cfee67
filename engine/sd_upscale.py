"""A1111's "SD upscale" img2img script: upscale the picture, then run img2img over it in overlapping tiles
of the request's width x height, and blend the tiles back together across their overlaps.

Tiles are spread evenly so that they cover the picture (the last row and column flush with its edges); every
tile of one picture uses the same seed. Overlaps are blended with a linear ramp, left to right within a row
and top to bottom between rows, as A1111's combine_grid does.
"""
import dataclasses
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image

from .errors import EngineError
from .upscalers import pixel_upscaler, upscale


class SDUpscaleError(EngineError, ValueError):
    """Settings the SD upscale cannot use; the message says which."""


@dataclass
class Tile:
    x: int
    y: int
    picture: Image.Image


def split(image: Image.Image, tile_w: int, tile_h: int, overlap: int) -> list[list[Tile]]:
    """Rows of tiles of tile_w x tile_h covering the picture, neighbours sharing at least `overlap` pixels."""
    cols = max(1, math.ceil((image.width - overlap) / (tile_w - overlap)))
    rows = max(1, math.ceil((image.height - overlap) / (tile_h - overlap)))
    dx = (image.width - tile_w) / (cols - 1) if cols > 1 else 0
    dy = (image.height - tile_h) / (rows - 1) if rows > 1 else 0
    grid = []
    for row in range(rows):
        y = min(int(row * dy), image.height - tile_h)
        grid.append([Tile(x, y, image.crop((x, y, x + tile_w, y + tile_h)))
                     for x in (min(int(col * dx), image.width - tile_w) for col in range(cols))])
    return grid


def combine(grid: list[list[Tile]], width: int, height: int, overlap: int) -> Image.Image:
    """The tiles put back: each tile's first `overlap` columns (rows) fade in over what lies before it."""
    tile_w, tile_h = grid[0][0].picture.size
    ramp = np.arange(overlap, dtype=np.float32) * 255 / max(overlap, 1)
    across = Image.fromarray(np.repeat(ramp[None, :], tile_h, axis=0).astype(np.uint8), "L")
    down = Image.fromarray(np.repeat(ramp[:, None], width, axis=1).astype(np.uint8), "L")
    out = Image.new("RGB", (width, height))
    for row in grid:
        strip = Image.new("RGB", (width, tile_h))
        for tile in row:
            if tile.x == 0 or not overlap:
                strip.paste(tile.picture, (tile.x, 0))
                continue
            strip.paste(tile.picture.crop((0, 0, overlap, tile_h)), (tile.x, 0), mask=across)
            strip.paste(tile.picture.crop((overlap, 0, tile_w, tile_h)), (tile.x + overlap, 0))
        y = row[0].y
        if y == 0 or not overlap:
            out.paste(strip, (0, y))
            continue
        out.paste(strip.crop((0, 0, width, overlap)), (0, y), mask=down)
        out.paste(strip.crop((0, overlap, width, tile_h)), (0, y + overlap))
    return out


def sd_upscale(generate: Callable, request, upscaler: str = "None", scale: float = 2.0, overlap: int = 64,
               upscalers: dict | None = None):
    """The script on `request` (img2img; width x height is the tile size): `generate(request)` runs each
    tile. Returns a GenerationResult with one picture per batch image, each with the first tile's infotext."""
    from .request import GenerationResult
    if request.init_image is None:
        raise SDUpscaleError("SD upscale works on a picture: give img2img an init image")
    if not 0 <= overlap < min(request.width, request.height):
        raise SDUpscaleError(f"tile overlap must be from 0 to less than the tile size ({request.width}x"
                             f"{request.height}, the width and height), not {overlap}: lower Tile overlap")
    if not 1 <= scale <= 8:
        raise SDUpscaleError(f"scale factor must be from 1 to 8, not {scale}")
    picture = request.init_image.convert("RGB")
    if upscaler != "None":
        picture = upscale(picture, scale, pixel_upscaler(upscaler, upscalers))
    if picture.width < request.width or picture.height < request.height:
        picture = picture.resize((max(picture.width, request.width), max(picture.height, request.height)),
                                 Image.LANCZOS)
    grid = split(picture, request.width, request.height, overlap)
    result = GenerationResult([], [], [], [])
    seed = request.seed
    for n in range(request.batch_count * request.batch_size):
        done_tiles, first = [], None
        for row in grid:
            done_row = []
            for tile in row:
                tile_request = dataclasses.replace(request, init_image=tile.picture, mask=None, batch_size=1,
                                                   batch_count=1, seed=seed + n if seed >= 0 else seed)
                done = generate(tile_request)
                if not done.images:
                    return result
                first = first or done
                seed = done.seeds[0] - n if seed < 0 else seed      # a random seed is fixed by the first tile
                done_row.append(Tile(tile.x, tile.y, done.images[0]))
                if done.interrupted:
                    result.interrupted = True
            done_tiles.append(done_row)
            if result.interrupted:
                break
        if result.interrupted:
            done_tiles += [row for row in grid[len(done_tiles):]]       # tiles not reached keep the upscale
            done_tiles = [r + row[len(r):] for r, row in zip(done_tiles, grid)]
        image = combine(done_tiles, picture.width, picture.height, overlap)
        text = first.infotexts[0] + f", SD upscale overlap: {overlap}, SD upscale upscaler: {upscaler}"
        image.info["parameters"] = text
        result.images.append(image)
        result.seeds.append(first.seeds[0])
        result.subseeds.append(first.subseeds[0])
        result.infotexts.append(text)
        if result.interrupted:
            break
    return result
