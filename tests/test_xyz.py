"""X/Y/Z plot: A1111's value notation and axis lists, and each cell of the grid equal to the single picture
made with its settings."""
import numpy as np
import pytest

from engine.xyz import (AXES, Axis, XYZError, a1111_axis_list, axis_kind, parse_values, plan_cells, plot_result,
                        run_cells)
from tests.test_pipeline import arrays, pipe, request  # noqa: F401  (pipe: a fixture)


def test_values_as_a1111_writes_them():
    steps, cfg, sampler = AXES["Steps"], AXES["CFG Scale"], AXES["Sampler"]
    assert parse_values(steps, "1-5") == [1, 2, 3, 4, 5]
    assert parse_values(steps, "1-10 (+2)") == [1, 3, 5, 7, 9]
    assert parse_values(steps, "10-20 [5]") == [10, 12, 15, 17, 20]
    assert parse_values(steps, "8, 12-14") == [8, 12, 13, 14]
    assert parse_values(cfg, "1-2 (+0.5)") == [1.0, 1.5, 2.0] and parse_values(cfg, "5-7 [3]") == [5.0, 6.0, 7.0]
    assert parse_values(sampler, 'Euler,"DPM++ 2M, Karras"') == ["Euler", "DPM++ 2M, Karras"]   # CSV, as A1111
    assert parse_values(AXES["Prompt order"], "a, b") == [("a", "b"), ("b", "a")]
    with pytest.raises(XYZError, match="not a number"):
        parse_values(steps, "ten")


def test_axes_by_a1111s_index_for_each_tab():
    assert axis_kind(4).label == "Steps" and axis_kind(9).label == "Sampler"       # txt2img
    assert axis_kind(9, img2img=True).label == "Sampler"                           # img2img has no hires axes
    assert a1111_axis_list(False).index("Checkpoint name") == 11
    with pytest.raises(XYZError, match="not available here"):
        axis_kind(a1111_axis_list(False).index("Face restore"))


def test_each_cell_is_the_picture_of_its_settings(pipe):
    axes = [Axis(AXES["Steps"], [2, 3]), Axis(AXES["Prompt S/R"], ["red", "blue"])]
    base = request(prompt="a red circle", seed=5)
    cells = plan_cells(base, axes)
    results, interrupted = run_cells(cells, lambda cell: pipe.generate(cell.request))
    plot = plot_result(axes, cells, results, interrupted, include_lone=True)
    grid = np.asarray(plot.images[0])
    assert plot.grids == 1 and len(plot.images) == 5
    top, left = grid.shape[0] - 2 * 64, grid.shape[1] - 2 * 64                     # the legend's band and column
    assert top > 0 and left > 0 and grid[:top].min() < 128 and grid[top:, :left].min() < 128   # labels drawn
    for (ix, iy, _), cell in cells:
        alone = pipe.generate(request(prompt=f"a {['red', 'blue'][iy]} circle", seed=5, steps=[2, 3][ix]))
        tile = grid[top + iy * 64: top + (iy + 1) * 64, left + ix * 64: left + (ix + 1) * 64].astype(np.int16)
        assert np.array_equal(tile, arrays(alone)[0]), (ix, iy)
    assert Axis(AXES["Steps"], [2, 3]).labels() == ["Steps: 2", "Steps: 3"]


def test_an_interrupt_keeps_the_cells_made(pipe):
    axes = [Axis(AXES["Seed"], [1, 2, 3])]
    cells = plan_cells(request(), axes)
    calls = []
    results, interrupted = run_cells(cells, lambda cell: pipe.generate(cell.request), should_stop=lambda: calls.append(1) or len(calls) > 2)
    plot = plot_result(axes, cells, results, interrupted)
    assert interrupted and len(results) == 2 and plot.images[0].size[0] >= 3 * 64
