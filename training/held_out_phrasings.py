"""Prompts in phrasings that no training caption uses: the measure of whether the starter understands prompts
written the way people write them, not only its own grammar.

Written before the starter was trained on `natural_captions` and kept apart from it: the sentence frames, the
connecting words ("against", "the background is", "in front of", "there is") and the filler words here appear
in no training caption (a test checks it). The content words (colours, shapes, sizes, places, "background",
"backdrop", "bg") are the training vocabulary: a model trained from scratch cannot know a colour it never saw.
"""
import random

from training.common import EVAL_SEED_START
from training.natural_captions import COLOUR_WORDS, SIZE_WORDS, article
from training.scenes import POSITION_WORDS, SHAPE_WORDS, Scene, random_scene

FRAMES = [
    "there is {thing} {where}, the {bgw} is {bg}",
    "{thing} {where} against {bga}",
    "the {bgw} is {bg} and {thing} sits {where}",
    "{bg} {bgw}. in it, {thing} {where}",
    "in front of {bga}: {thing} {where}",
    "{thing} placed {where}, {bg} colored {bgw}",
    "{bg} {bgw} and just {thing}",
    "draw me {thing} {where} on a plain {bg} {bgw}",
    "{thing}, {bg} {bgw}, very nice, masterpiece",
    "i want {thing} {where} with the {bgw} in {bg}",
    "only one {bare}, on {bga}",
    "{bga}, nothing else but {thing} {where}",
]
HELD_OUT_WORDS = ["there is", "against", "the background is", "the backdrop is", "in front of", "placed", "sits",
                  "colored", "just", "draw me", "plain", "very nice", "masterpiece", "i want", "only one",
                  "nothing else", "with the", "in it"]


def held_out_prompt(scene: Scene, rng: random.Random) -> str:
    shape = scene.shapes[0]
    colour = rng.choice(COLOUR_WORDS.get(shape.color, [shape.color]))
    size = rng.choice(SIZE_WORDS[shape.size])
    bare = " ".join(w for w in (size, colour, rng.choice(SHAPE_WORDS[shape.kind])) if w)
    bg = rng.choice(COLOUR_WORDS.get(scene.background, [scene.background]))
    bgw = rng.choice(["background", "backdrop", "bg"])
    return rng.choice(FRAMES).format(thing=article(bare), bare=bare, where=rng.choice(POSITION_WORDS[shape.position]),
                                     bg=bg, bgw=bgw, bga=article(f"{bg} {bgw}"))


def held_out_phrasing_cases(count: int):
    """(seed, single-shape scene, prompt) on evaluation seeds the other evaluations do not use."""
    cases = []
    for i in range(count):
        rng = random.Random(EVAL_SEED_START + 21_000_000 + i)
        scene = random_scene(rng, max_shapes=1)
        cases.append((EVAL_SEED_START + 21_000_000 + i, scene, held_out_prompt(scene, rng)))
    return cases
