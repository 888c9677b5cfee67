"""Captions as people write prompts, for training the starter: other words for colours, sizes and the
background, the background named first, filler words, counts, and a share that leaves out where and how big.

The scene generator's own grammar (`scenes.caption`) stays as it is, so the existing evaluation keeps its
meaning. `training/held_out_phrasings.py` holds phrasings that none of these captions uses, written apart, to
measure whether the starter understands prompts it was not shown.
"""
import random

from training.scenes import POSITION_WORDS, SHAPE_WORDS, Scene, Shape

COLOUR_WORDS = {"gray": ["gray", "grey"]}          # every other colour is written as its name
SIZE_WORDS = {"small": ["small", "little", "tiny", "smallish"], "medium": ["", "medium", "mid-sized"],
              "large": ["large", "big", "huge", "giant"]}
MORE_SHAPE_WORDS = {"circle": ["dot", "ball"], "square": ["block"], "ring": ["hoop"]}
BACKGROUND_WORDS = ["background", "backdrop", "bg"]
COUNT_WORDS = {1: ["a", "one", "a single", "1"], 2: ["two", "2"], 3: ["three", "3"]}
PREFIXES = ["", "", "", "a picture of", "an image of", "a drawing of", "an illustration of", "simple", "flat",
            "minimal", "please", "high quality"]
SUFFIXES = ["", "", "", "simple", "flat colors", "minimal", "clean", "high quality", "2d"]


def colour_word(rng: random.Random, colour: str) -> str:
    return rng.choice(COLOUR_WORDS.get(colour, [colour]))


def article(text: str) -> str:
    return ("an " if text[0] in "aeiou" else "a ") + text


def thing(rng: random.Random, shape: Shape, say_size: bool, say_place: bool, count_word: str | None = None) -> str:
    noun = rng.choice(SHAPE_WORDS[shape.kind] + MORE_SHAPE_WORDS.get(shape.kind, []))
    size = rng.choice(SIZE_WORDS[shape.size]) if say_size else ""
    words = " ".join(w for w in (size, colour_word(rng, shape.color), noun) if w)
    words = f"{count_word} {words}" if count_word and count_word != "a" else article(words)
    return f"{words} {rng.choice(POSITION_WORDS[shape.position])}" if say_place else words


def background(rng: random.Random, colour: str) -> tuple[str, str]:
    """(phrase after the things, phrase before them) naming the background."""
    c, word = colour_word(rng, colour), rng.choice(BACKGROUND_WORDS)
    after = rng.choice([f"on {article(c + ' ' + word)}", f"{c} {word}", f"with {article(c + ' ' + word)}",
                        f"over {article(c + ' ' + word)}", f"on {c}", f"{word}: {c}"])
    before = rng.choice([f"{c} {word}", f"{article(c + ' ' + word)} with", f"{word} {c},", f"on {article(c + ' ' + word)},"])
    return after, before


def natural_caption(scene: Scene, rng: random.Random) -> str:
    """One prompt for the scene as a person might write it."""
    say_place, say_size = rng.random() < 0.7, rng.random() < 0.7
    counted = len(scene.shapes) == 1 and rng.random() < 0.3
    count_word = rng.choice(COUNT_WORDS[1]) if counted else None
    things = [thing(rng, s, say_size, say_place, count_word) for s in scene.shapes]
    rng.shuffle(things)
    listed = things[0] if len(things) == 1 else ", ".join(things[:-1]) + rng.choice([" and ", ", "]) + things[-1]
    after, before = background(rng, scene.background)
    text = f"{listed} {after}" if rng.random() < 0.6 else f"{before} {listed}"
    prefix, suffix = rng.choice(PREFIXES), rng.choice(SUFFIXES)
    return " ".join(w for w in (prefix, text) if w) + (f", {suffix}" if suffix else "")
