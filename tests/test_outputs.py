"""Outputs are saved as A1111 names them, with the infotext inside, never overwritten, never half-written."""
import datetime
import errno
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from ui import outputs
from ui.outputs import save_image

DAY = datetime.date(2026, 11, 23)


def test_names_numbers_and_metadata(tmp_path):
    image = Image.new("RGB", (8, 8), (255, 0, 0))
    first = save_image(image, "a red square\nSteps: 1, Seed: 7", 7, tmp_path, "txt2img", DAY)
    second = save_image(image, "again\nSteps: 1, Seed: 7", 7, tmp_path, "txt2img", DAY)
    assert first == tmp_path / "txt2img-images" / "2026-11-23" / "00000-7.png"
    assert second.name == "00001-7.png"
    assert Image.open(first).text["parameters"] == "a red square\nSteps: 1, Seed: 7"
    assert Image.open(second).text["parameters"] == "again\nSteps: 1, Seed: 7"
    assert sorted(p.name for p in first.parent.iterdir()) == ["00000-7.png", "00001-7.png"]   # no temporary files


def test_a_taken_name_is_never_overwritten(tmp_path):
    folder = tmp_path / "img2img-images" / "2026-11-23"
    folder.mkdir(parents=True)
    (folder / "00004-1.png").write_bytes(b"someone else's file")
    path = save_image(Image.new("RGB", (4, 4)), "x", 1, tmp_path, "img2img", DAY)
    assert path.name == "00005-1.png" and (folder / "00004-1.png").read_bytes() == b"someone else's file"


def no_hard_links(monkeypatch):
    """A file system like FAT or exFAT: every hard link is refused with EPERM."""
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EPERM, "Operation not permitted")
    monkeypatch.setattr(os, "link", refuse)


@pytest.mark.parametrize("links", [True, False], ids=["hard links", "no hard links"])
def test_without_hard_links_pictures_are_still_saved_whole_and_never_overwritten(tmp_path, monkeypatch, links):
    if not links:
        no_hard_links(monkeypatch)
    folder = tmp_path / "txt2img-images" / "2026-11-23"
    folder.mkdir(parents=True)
    (folder / "00000-3.png").write_bytes(b"someone else's file")
    first = save_image(Image.new("RGB", (8, 8), (0, 0, 255)), "blue", 3, tmp_path, "txt2img", DAY)
    second = save_image(Image.new("RGB", (8, 8), (0, 255, 0)), "green", 3, tmp_path, "txt2img", DAY)
    assert (first.name, second.name) == ("00001-3.png", "00002-3.png")
    assert (folder / "00000-3.png").read_bytes() == b"someone else's file"
    assert Image.open(first).text["parameters"] == "blue" and Image.open(second).getpixel((0, 0)) == (0, 255, 0)
    assert sorted(p.name for p in folder.iterdir()) == ["00000-3.png", "00001-3.png", "00002-3.png"]


@pytest.mark.parametrize("links", [True, False], ids=["hard links", "no hard links"])
def test_savers_racing_for_the_same_number_each_get_their_own_name(tmp_path, monkeypatch, links):
    """Every saver sees the same next number, so all but one must take the collision path."""
    if not links:
        no_hard_links(monkeypatch)
    monkeypatch.setattr(outputs, "next_number", lambda folder: 0)
    savers, start = 8, threading.Barrier(8)
    saved = [None] * savers

    def save(k):
        start.wait()
        saved[k] = save_image(Image.new("RGB", (16, 16), (k * 30, 0, 0)), f"saver {k}", 5, tmp_path, "img2img", DAY)

    threads = [threading.Thread(target=save, args=(k,)) for k in range(savers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(p.name for p in saved) == [f"{n:05d}-5.png" for n in range(savers)]
    for k, path in enumerate(saved):      # each file holds its own saver's picture and text
        assert Image.open(path).text["parameters"] == f"saver {k}"
        assert Image.open(path).getpixel((0, 0)) == (k * 30, 0, 0)
    assert sorted(p.name for p in saved[0].parent.iterdir()) == sorted(p.name for p in saved)


KILLED_WRITER = """
import os, sys, time
from pathlib import Path
from PIL import Image
from ui import outputs
where, links, outdir = sys.argv[1], sys.argv[2] == "links", Path(sys.argv[3])
def stop_here(*args, **kwargs):
    (outdir / "stopped").write_text("x")
    time.sleep(600)
if not links:
    def refuse(*args, **kwargs):
        raise PermissionError(1, "Operation not permitted")
    os.link = refuse
if where == "writing":          # half the PNG is on disk when the writer dies
    real_save = Image.Image.save
    def half_save(self, f, *args, **kwargs):
        import io
        buffer = io.BytesIO()
        real_save(self, buffer, *args, **kwargs)
        f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        f.flush()
        stop_here()
    Image.Image.save = half_save
else:                           # the picture is complete but not yet in place
    os.replace = stop_here
    os.link = stop_here if links else os.link
outputs.save_image(Image.effect_noise((256, 256), 64).convert("RGB"), "x", 9, outdir, "txt2img")
"""


@pytest.mark.parametrize("where, links", [("writing", "links"), ("writing", "no-links"), ("placing", "links"),
                                          ("placing", "no-links")])
def test_a_killed_writer_leaves_no_partial_picture(tmp_path, where, links):
    root = Path(__file__).resolve().parents[1]
    child = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, where, links, str(tmp_path)], cwd=root,
                             env={**os.environ, "PYTHONPATH": str(root)})
    deadline = time.monotonic() + 60
    while not (tmp_path / "stopped").exists():
        assert child.poll() is None and time.monotonic() < deadline, "the writer did not reach the kill point"
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    left = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "stopped"]
    assert left and not [p for p in left if p.suffix == ".png"], left     # a .tmp (or .claim) at most
    picture = save_image(Image.new("RGB", (4, 4)), "after", 9, tmp_path, "txt2img")   # the next save is unhindered
    assert Image.open(picture).text["parameters"] == "after"
