"""The maps and captions the starter ControlNets train on, and the adherence measure reported for them:
user-made maps lie on the scene's true edges, captions of the ControlNet mix never give a place away, and the
measures tell a picture that follows the map from one that does not (a shifted picture scores worse)."""
import random

import cv2
import numpy as np
from PIL import Image

from engine.control_map import fit_map
from training import evaluate_adherence as adherence
from training.scenes import COLORS, POSITION_WORDS, colour_caption, free_scene, render, render_edges
from training.train_controlnet import training_batch, training_caption, training_scene
from training.user_maps import EDGE_STYLES, edge_map, hand_scribble


def test_every_edge_style_draws_the_scenes_edges_where_they_are():
    """Lit pixels of each style's fitted map lie within 3 px of the scene's boundaries (a scribble also traces
    the hidden parts of shapes that overlap, so a share of its strokes may lie elsewhere)."""
    rng = random.Random(4)
    for i in range(6):
        scene = free_scene(random.Random(i))
        edges = np.asarray(render_edges(scene))[..., 0]
        near_truth = cv2.dilate(edges, np.ones((7, 7), np.uint8)) > 0
        for style in EDGE_STYLES:
            lit = fit_map(edge_map(style, scene, rng), 64, 64, "Crop and resize")[..., 0] > 40
            if lit.sum() < 8:           # lineart of a shape lighter than its background can be faint
                assert style == "lineart"
                continue
            on_edges = (lit & near_truth).sum() / lit.sum()
            assert on_edges > (0.65 if style == "scribble" else 0.85), (style, i, on_edges)


def test_a_hand_scribble_is_black_strokes_on_white():
    scribble = hand_scribble(free_scene(random.Random(1)), random.Random(2), 512)
    assert scribble.shape == (512, 512, 3) and scribble.max() == 255 and scribble.min() == 0
    assert 0.01 < (scribble[..., 0] < 128).mean() < 0.4


def test_colour_captions_never_say_where_or_how_big():
    words = [w for ws in POSITION_WORDS.values() for w in ws] + ["small", "large", "big", "tiny", "little"]
    rng = random.Random(0)
    for i in range(200):
        scene = free_scene(random.Random(i))
        for text in (colour_caption(scene, rng), colour_caption(scene, rng, shapes_named=True)):
            assert not any(f" {w} " in f" {text} " for w in words), text
            assert scene.background in text and all(s.color in text for s in scene.shapes)


def test_the_training_mix_has_empty_colour_only_and_free_scenes():
    texts, free = [], 0
    for seed in range(400):
        scene, is_free, rng = training_scene(seed, 0.5)
        free += is_free
        texts.append(training_caption(scene, is_free, rng, (0.5, 0.25, 0.1)))
    assert 150 < free < 250 and 150 < texts.count("") < 250
    pictures, captions, maps = training_batch("edges", range(3), 0.5, (0.5, 0.25, 0.1))
    assert pictures.shape == maps.shape == (3, 3, 64, 64) and len(captions) == 3
    assert 0 <= maps.min() and maps.max() <= 1 and maps.amax(dim=(1, 2, 3)).min() > 0.1


def test_adherence_measures_can_fail():
    """The true picture scores high; the same picture shifted, or a blank one, scores low."""
    for seed, scene, prompt in adherence.held_out(8):
        true = render(scene)
        iou, f1 = adherence.scores(scene, true)
        assert iou > 0.9 and f1 > 0.9
        shifted = Image.fromarray(np.roll(np.asarray(true), (12, 12), axis=(0, 1)))
        assert adherence.scores(scene, shifted)[0] < iou - 0.3 and adherence.scores(scene, shifted)[1] < 0.4
        blank = Image.new("RGB", (64, 64), (30, 30, 30))
        assert adherence.scores(scene, blank) == (0.0, 0.0)
        assert prompt and scene.background in prompt


def test_the_colour_judgement_tells_the_prompts_colours_from_swapped_ones():
    for seed, scene, prompt in adherence.held_out(6):
        true = render(scene)
        assert adherence.judged(scene, true)[2:] == (1.0, 1.0)
        thing = scene.shapes[0].color
        swapped = render(type(scene)(thing, tuple(type(s)(s.kind, scene.background, s.size, s.position, s.centre,
                                                             s.r) for s in scene.shapes)))
        assert adherence.colours_right(swapped, {s.color for s in scene.shapes}, scene.background) == (0.0, 0.0)


def test_the_shuffle_measure_tells_the_references_colours_from_others():
    from training import evaluate_shuffle
    for seed, scene, prompts in evaluate_shuffle.held_out(6):
        assert evaluate_shuffle.judged(scene, render(scene)) == (1.0, 1.0, 1.0)
        other = next(c for c in ("red", "blue", "green") if c != scene.background
                     and c not in {s.color for s in scene.shapes})
        assert evaluate_shuffle.judged(scene, Image.new("RGB", (64, 64), COLORS[other])) == (0.0, 0.0, 0.0)
        background_only = Image.new("RGB", (64, 64), COLORS[scene.background])
        assert 0.5 < evaluate_shuffle.judged(scene, background_only)[2] < 1.0
        assert prompts["empty"] == "" and not any(s.color in prompts["shapes"] for s in scene.shapes)
