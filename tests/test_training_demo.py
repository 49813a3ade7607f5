"""`tinytorch-course demo`'s training part: the step graph, the curves, the accuracy."""

from __future__ import annotations

from tinytorch_course.demo_training import show_step_graph, show_training


def test_step_graph_names_every_parameter_forward_and_backward(capsys):
    show_step_graph()
    out = capsys.readouterr().out
    for name in ("W1", "b1", "W2", "b2"):
        assert f"∂loss/∂{name}" in out, out
    assert "loss = " in out and "[relu]" in out


def test_show_training_prints_curves_and_the_test_accuracy(capsys):
    accuracy = show_training(epochs=3, progress=False)
    out = capsys.readouterr().out
    assert "loss per epoch" in out and "accuracy per epoch" in out
    assert f"test accuracy {accuracy:.2%} on 359 held-out digits" in out
    assert accuracy > 0.9  # 3 epochs: well on the way (the 20-epoch run is tested in test_training)
