"""Wildcards and {a|b} variants through dynamicprompts: each picture its own prompt, a seed repeating them."""
import numpy as np
import pytest

from engine import Device, GenerationRequest
from engine.infotext import parse_infotext
from engine.wildcards import WildcardError, expand, is_dynamic
from tests.browser import MODELS
from ui.model_state import ModelState

pytest.importorskip("dynamicprompts", reason="pip install -r requirements.txt (dynamicprompts reads wildcards)")


def test_dynamic_prompts_are_recognised_and_drawn_by_seed(tmp_path):
    (tmp_path / "colours.txt").write_text("red\nblue\ngreen\n")
    assert is_dynamic("a {red|blue} ring") and is_dynamic("on __colours__") and is_dynamic("{2$$a|b|c}")
    assert not is_dynamic("a (red:1.2) ring [a:b:3]") and not is_dynamic("a_b c")
    first = expand("a {cat|dog} on __colours__", 6, seed=11, folder=tmp_path)
    assert first == expand("a {cat|dog} on __colours__", 6, seed=11, folder=tmp_path)       # the seed repeats them
    assert all(p.split(" on ")[1] in ("red", "blue", "green") for p in first) and len(set(first)) > 1
    with pytest.raises(WildcardError):
        expand("a {cat|dog", 2, seed=1, folder=tmp_path)


def test_each_picture_of_a_batch_gets_its_own_prompt_and_its_seed(tmp_path):
    (tmp_path / "shapes.txt").write_text("circle\nsquare\nstar\n")
    state = ModelState(MODELS, Device.cpu_fp32(), wildcards_dir=tmp_path)
    assert state.load("starter").startswith("Loaded")
    request = GenerationRequest(prompt="a {red|yellow} __shapes__ on a blue background", width=64, height=64,
                                steps=4, seed=40, batch_size=3)
    run = state.generate(request)
    prompts = [parse_infotext(t)["Prompt"] for t in run.infotexts]
    assert prompts == expand(request.prompt, 3, 40, tmp_path) and run.seeds == [40, 41, 42]
    again = state.generate(request)
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(run.images, again.images))
    alone = state.generate(GenerationRequest(prompt=prompts[1], width=64, height=64, steps=4, seed=41))
    assert np.array_equal(np.asarray(run.images[1]), np.asarray(alone.images[0]))
