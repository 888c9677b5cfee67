"""The benchmark script runs end to end (on a tiny model) and writes every case; no timing is asserted."""
import math
import re

from bench import engine_vs_diffusers


def test_benchmark_writes_every_case_with_finite_ratios(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    engine_vs_diffusers.main(["--tiny", "--sizes", "64", "--repeats", "1", "--steps", "3", "--rss-runs", "1",
                              "--precisions", "fp32",
                              "--cache", str(tmp_path), "--out", str(out)])
    text = out.read_text()
    rows = [line.split(" | ") for line in text.splitlines() if line.startswith("| 64x64")]
    cases = {row[0] for row in rows}
    assert "| 64x64 DPM++ 2M Karras CFG 7, 3 steps, fp32 both" in cases
    assert any("defaults, 20 steps" in c for c in cases) and sum("LCM" in c for c in cases) == 2
    assert any("peak RSS" in c for c in cases)
    for row in rows:
        ratio = float(row[-1].rstrip(" |"))
        assert math.isfinite(ratio) and ratio > 0, row
    assert {row[1] for row in rows} == {"encode", "step", "decode", "total", "rss"}
    assert re.search(r"Machine: .*torch threads \d+", text)


def test_sdxl_benchmark_writes_both_rows_with_finite_ratios(tmp_path):
    from bench import sdxl_unet_step
    out = tmp_path / "BENCHMARKS-SDXL.md"
    sdxl_unet_step.main(["--tiny", "--sizes", "64", "--repeats", "1", "--cache", str(tmp_path), "--out", str(out)])
    rows = [line.split(" | ") for line in out.read_text().splitlines() if line.startswith("| 64x64 fp32")]
    assert [row[0] for row in rows] == ["| 64x64 fp32 UNet step (CFG batch of 2)", "| 64x64 fp32 peak RSS"]
    for row in rows:
        ratio = float(row[-1].rstrip(" |"))
        assert math.isfinite(ratio) and ratio > 0, row
