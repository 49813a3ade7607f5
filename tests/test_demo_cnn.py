"""`tinytorch-course demo cnn [--fashion]`: curves, test accuracy and drawn predictions."""

from __future__ import annotations

import numpy as np

from tinytorch_course.demo_cnn import example_picks, show_cnn, show_fashion


def test_digits_demo_prints_both_curves_the_accuracies_and_what_the_cnn_read(capsys):
    accuracy = show_cnn(epochs=2, progress=False)
    out = capsys.readouterr().out
    assert "CNN loss per epoch" in out and "CNN accuracy per epoch" in out
    assert f"CNN {accuracy:.2%}" in out and "MLP " in out
    assert out.count("read as") >= 4, out
    assert accuracy > 0.5  # two epochs: far above the 10 % of guessing


def test_fashion_demo_prints_both_curves_the_confusions_and_drawn_images(capsys):
    accuracy = show_fashion(epochs=1, limit=300, progress=False)
    out = capsys.readouterr().out
    assert "1 epoch," in out and "loss per epoch" in out and "accuracy per epoch" in out
    assert f"test accuracy {accuracy:.2%}" in out
    assert "most frequent mistakes" in out and out.count("┌" + "─" * 28 + "┐") == 4, out


def test_the_drawn_examples_are_distinct_and_end_with_a_mistake():
    assert example_picks(4, np.array([2, 7])) == [0, 1, 3, 2]  # the mistake is not drawn twice
    assert example_picks(4, np.array([9])) == [0, 1, 2, 9]
    assert example_picks(4, np.array([], dtype=int)) == [0, 1, 2, 3]
