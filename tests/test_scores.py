"""bertcli.scores against torch's own kernels and transformers' choice of activation."""

import numpy as np
import pytest

from bertcli import scores


def test_softmax_and_sigmoid_equal_torch():
    torch = pytest.importorskip("torch")
    x = (np.random.default_rng(0).normal(size=(4, 7)) * 30).astype(np.float32)
    assert np.abs(scores.softmax(x) - torch.softmax(torch.from_numpy(x), -1).numpy()).max() < 1e-7
    assert np.abs(scores.sigmoid(x) - torch.sigmoid(torch.from_numpy(x)).numpy()).max() < 1e-7
    assert np.allclose(scores.apply("none", x), x)


@pytest.mark.parametrize("config, want", [
    ({"id2label": {"0": "score"}}, "sigmoid"),
    ({"num_labels": 3}, "softmax"),
    ({"id2label": {"0": "a", "1": "b"}, "problem_type": "multi_label_classification"}, "sigmoid"),
    ({"id2label": {"0": "a", "1": "b"}, "problem_type": "regression"}, "none"),
    ({}, "softmax"),
])
def test_default_function_as_the_pipeline_picks_it(config, want):
    assert scores.default_function(config) == want


def test_unknown_function_is_refused():
    with pytest.raises(ValueError, match="softmax, sigmoid, none"):
        scores.apply("relu", np.zeros(2))
