"""The held-out phrasings are really held out: no training caption uses their frames or connecting words."""
import random
import re

from training.held_out_phrasings import HELD_OUT_WORDS, held_out_phrasing_cases
from training.natural_captions import natural_caption
from training.scenes import caption, colour_caption, free_scene, scene_for


def contains(text: str, phrase: str) -> bool:
    return re.search(rf"\b{re.escape(phrase)}\b", text) is not None


def training_captions(count: int = 3000) -> list[str]:
    texts = []
    for seed in range(count):
        scene, first = scene_for(seed)
        rng = random.Random(seed)
        texts += [first, caption(scene, rng), natural_caption(scene, rng), colour_caption(free_scene(rng), rng),
                  colour_caption(scene, rng, shapes_named=True)]
    return texts


def test_no_training_caption_uses_a_held_out_phrase():
    for text in training_captions():
        assert not [p for p in HELD_OUT_WORDS if contains(text, p)], text


def test_every_held_out_prompt_uses_a_phrasing_training_never_shows():
    prompts = [prompt for _, _, prompt in held_out_phrasing_cases(200)]
    assert all(any(contains(p, w) for w in HELD_OUT_WORDS) for p in prompts)
    assert not set(prompts) & set(training_captions(500))


def test_natural_captions_name_the_scene_in_other_words():
    texts = [natural_caption(scene_for(s)[0], random.Random(s)) for s in range(400)]
    for word in ("grey", "bg", "huge", "an image of", "one"):
        assert any(contains(t, word) for t in texts), word
    scene = scene_for(7)[0]
    for seed in range(20):
        text = natural_caption(scene, random.Random(seed))
        assert scene.background in text or (scene.background == "gray" and "grey" in text)
