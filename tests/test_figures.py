"""The figures starter-pose trains on: the skeleton map lies on the figure, is drawn in OpenPose's colours,
the pose measure tells a picture in the pose from one that is not, and the training mix has its caption kinds."""
import random

import numpy as np
from PIL import Image

from engine.control_map import fit_map
from training import evaluate_pose
from training.figures import FIGURE_WORDS, figure_caption, random_figure, render_figure, render_pose
from training.scenes import COLORS, SIZE
from training.train_controlnet import training_batch

# OpenPose's limb colours at 0.6 brightness and its joint colours, as its preprocessors draw them
NECK_TO_RIGHT_SHOULDER = (153, 0, 0)
NOSE_JOINT = (255, 0, 0)


def test_figures_fit_in_the_picture_and_vary():
    figures = [random_figure(random.Random(seed)) for seed in range(50)]
    for figure in figures:
        points = np.asarray(figure.keypoints)
        assert len(points) == 18 and (points > -0.05).all() and (points < 1.05).all()
        assert figure.color != figure.background
    heights = [np.ptp(np.asarray(f.keypoints)[:, 1]) for f in figures]
    assert min(heights) < 0.45 < 0.7 < max(heights)
    wrists = np.asarray([f.keypoints[4] for f in figures])
    assert np.ptp(wrists[:, 1]) > 0.4              # arms up and down


def test_the_skeleton_lies_on_the_figure_in_openpose_colours():
    for seed in range(10):
        figure = random_figure(random.Random(seed))
        body = evaluate_pose.true_figure(figure)
        big = render_pose(figure, 512)              # (at 64 px the eyes' joints cover the nose's)
        drawn = fit_map(big, SIZE, SIZE, "Crop and resize").any(axis=2)
        assert body[drawn].mean() > 0.8            # the skeleton runs inside the capsules
        assert (big == NOSE_JOINT).all(axis=2).any() and (big == NECK_TO_RIGHT_SHOULDER).all(axis=2).any()
        assert render_pose(figure, SIZE).any(axis=2).mean() > drawn.mean()   # joints of radius 4 px at any size


def test_pose_measures_can_fail():
    """The true figure scores high; the figure of another pose, or a blank picture, scores low."""
    cases = evaluate_pose.held_out(8)
    for (seed, figure, prompts), (_, other, _) in zip(cases, cases[1:] + cases[:1]):
        iou, hits = evaluate_pose.scores(figure, render_figure(figure))
        assert iou > 0.9 and hits > 0.95
        wrong = evaluate_pose.scores(figure, render_figure(other))
        assert wrong[0] < iou - 0.3 and wrong[1] < 0.8
        blank = Image.new("RGB", (SIZE, SIZE), COLORS[figure.background])
        assert evaluate_pose.scores(figure, blank) == (0.0, 0.0)
        assert any(word in prompts["figure"] for word in FIGURE_WORDS) and figure.color in prompts["colours"]
        assert not any(word in prompts["colours"] for word in FIGURE_WORDS)


def test_the_pose_training_mix():
    pictures, captions, maps = training_batch("pose", range(40), 0.5, (0.5, 0.25, 0.1))
    assert pictures.shape == maps.shape == (40, 3, 64, 64)
    assert 10 < captions.count("") < 30 and any("figure" in c or "person" in c for c in captions)
    assert maps.amax(dim=(1, 2, 3)).min() > 0.5    # every map has a skeleton on it
    figure = random_figure(random.Random(0))
    assert figure_caption(figure, random.Random(1)).count(figure.color) == 1
