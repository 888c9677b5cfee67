"""Outputs are saved as A1111 names them, with the infotext inside, never overwritten, never half-written."""
import datetime

from PIL import Image

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
