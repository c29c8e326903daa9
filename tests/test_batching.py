"""TokenBudgetBatcher: planning by token budget, windows, and results back in input order (pure, no torch)."""

from __future__ import annotations

import pytest

from bertcli.batching import TokenBudgetBatcher, padded_tokens


def test_plan_sorts_longest_first_and_respects_the_budget():
    lengths = [3, 10, 4, 9, 2, 10]
    plan = TokenBudgetBatcher(max_tokens=20).plan(lengths)
    # longest first: 10, 10 (2×10 = 20 fits), then 9, 4 (2×9 = 18; a third would be 27), then 3, 2
    assert plan == [[1, 5], [3, 2], [0, 4]]
    assert all(len(b) * max(lengths[i] for i in b) <= 20 for b in plan)
    assert padded_tokens(plan, lengths) == 20 + 18 + 6


def test_unsorted_plan_keeps_runs_in_input_order():
    lengths = [3, 10, 4, 9, 2, 10]
    plan = TokenBudgetBatcher(max_tokens=20, sort=False).plan(lengths)
    assert plan == [[0, 1], [2, 3], [4, 5]]
    # sorting wastes less padding on the same input
    assert padded_tokens(TokenBudgetBatcher(max_tokens=20).plan(lengths), lengths) < padded_tokens(plan, lengths)


def test_a_row_longer_than_the_budget_gets_a_batch_of_its_own():
    assert TokenBudgetBatcher(max_tokens=8).plan([5, 50, 3]) == [[1], [0], [2]]


def test_max_batch_bounds_rows():
    plan = TokenBudgetBatcher(max_tokens=1000, max_batch=2).plan([1, 1, 1, 1, 1])
    assert plan == [[0, 1], [2, 3], [4]]


def test_ties_keep_input_order_and_zero_lengths_count_as_one():
    assert TokenBudgetBatcher(max_tokens=2).plan([0, 0, 0]) == [[0, 1], [2]]
    assert TokenBudgetBatcher(max_tokens=100).plan([]) == []


def test_windows_are_bounded():
    batcher = TokenBudgetBatcher(window=3)
    assert list(batcher.windows(iter(range(8)))) == [[0, 1, 2], [3, 4, 5], [6, 7]]


def test_run_restores_input_order_and_calls_process_per_batch():
    items = ["aaaa", "b", "cccccc", "dd", "eee", "f", "gggggggg"]
    calls: list[list[str]] = []

    def process(batch):
        calls.append(batch)
        return [s.upper() for s in batch]

    batcher = TokenBudgetBatcher(max_tokens=8, window=4)
    assert list(batcher.run(items, len, process)) == [s.upper() for s in items]
    # window 1: aaaa b cccccc dd → [cccccc], [aaaa, dd], [b]; window 2: eee f gggggggg → [gggggggg], [eee, f]
    assert calls == [["cccccc"], ["aaaa", "dd"], ["b"], ["gggggggg"], ["eee", "f"]]


def test_run_is_lazy_one_window_at_a_time():
    consumed = []

    def source():
        for i in range(10):
            consumed.append(i)
            yield "x" * (i + 1)

    stream = TokenBudgetBatcher(window=4).run(source(), len, lambda b: b)
    assert next(stream) == "x"
    assert consumed == [0, 1, 2, 3]


def test_process_returning_the_wrong_count_is_an_error():
    with pytest.raises(ValueError, match="2 results for a batch of 1"):
        list(TokenBudgetBatcher(max_tokens=1).run(["a", "b"], len, lambda b: ["x", "y"]))


@pytest.mark.parametrize("kwargs", [{"max_tokens": 0}, {"max_batch": 0}, {"window": 0}])
def test_bad_settings(kwargs):
    with pytest.raises(ValueError):
        TokenBudgetBatcher(**kwargs)


def test_token_budget_follows_the_runtime():
    from types import SimpleNamespace

    from bertcli.batching import token_budget

    def model(name, device="cpu", **options):
        return SimpleNamespace(name=name, device=device, options=options)

    assert token_budget(None, model("onnx", compute="float32")) == 1024  # ONNX Runtime: small batches stay in cache
    assert token_budget(None, model("onnx", compute="bfloat16")) == 4096  # OpenVINO's AMX tiles want bigger ones
    assert token_budget(None, model("torch")) == 1024
    assert token_budget(None, model("torch", "cuda:0")) == 16384
    assert token_budget(77, model("onnx", compute="bfloat16")) == 77  # --max-tokens wins
