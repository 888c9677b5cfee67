"""A1111's SD upscale: tiles that cover the picture and blend back, and img2img over each tile."""
import numpy as np
from PIL import Image

from engine.sd_upscale import combine, sd_upscale, split
from tests.test_pipeline import pipe, request  # noqa: F401  (pipe: a fixture)


def test_tiles_cover_the_picture_and_untouched_tiles_put_it_back_exactly():
    picture = Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 150, 3), dtype=np.uint8))
    grid = split(picture, 64, 64, 16)
    assert len(grid) == 4 and len(grid[0]) == 3                           # ceil((200-16)/48), ceil((150-16)/48)
    assert grid[-1][-1].x + 64 == 150 and grid[-1][-1].y + 64 == 200       # flush with the edges
    assert all(t.picture.size == (64, 64) for row in grid for t in row)
    assert np.array_equal(np.asarray(combine(grid, 150, 200, 16)), np.asarray(picture))


def test_each_tile_is_img2img_of_that_part_of_the_upscaled_picture(pipe):
    source = Image.fromarray(np.random.default_rng(1).integers(0, 256, (48, 48, 3), dtype=np.uint8))
    tiles = []

    def generate(tile_request):
        tiles.append(tile_request)
        return pipe.generate(tile_request)
    run = sd_upscale(generate, request(init_image=source, denoising_strength=0.3, seed=9), "Lanczos", 2, 32)
    assert run.images[0].size == (96, 96) and len(tiles) == 4                 # 2 x 2 tiles of 64, overlapping 32
    assert all(t.seed == 9 and t.init_image.size == (64, 64) for t in tiles)
    big = source.resize((96, 96), Image.LANCZOS)
    assert np.array_equal(np.asarray(tiles[3].init_image), np.asarray(big.crop((32, 32, 96, 96))))
    alone = pipe.generate(tiles[0])
    out = np.asarray(run.images[0]).astype(np.int16)
    assert np.array_equal(out[:32, :32], np.asarray(alone.images[0]).astype(np.int16)[:32, :32])  # no overlap there
    assert "SD upscale overlap: 32" in run.infotexts[0]
