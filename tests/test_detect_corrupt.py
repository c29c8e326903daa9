"""`bertcli detect --corrupt N`: the ELECTRA generator's samples and the discriminator's scores against
transformers' ElectraForMaskedLM / ElectraForPreTraining, the sampling distribution, --seed, and the refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bertcli.detect import load_corrupter, sample_from_softmax
from bertcli.errors import BadInputError, UsageError
from bertcli.masking import chi_square
from bertcli.resolve import resolve_model

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

TEXT = "The chef cooked the meal in the kitchen."


@pytest.fixture(scope="module")
def corrupter(tiny_electra, tiny_electra_generator):
    return load_corrupter(resolve_model(str(tiny_electra)), resolve_model(str(tiny_electra_generator)))


def test_gumbel_max_samples_follow_the_softmax():
    logits = np.array([[2.0, 1.0, 0.0, -1.0, 0.5]] * 20000)
    draws = sample_from_softmax(logits, np.random.default_rng(3))
    expected = np.exp(logits[0]) / np.exp(logits[0]).sum()
    test = chi_square(np.bincount(draws, minlength=5).tolist(), expected.tolist())
    assert test["consistent"] is True, test


def test_generator_and_discriminator_equal_transformers(corrupter, tiny_electra, tiny_electra_generator):
    result = corrupter.corrupt(TEXT, 4, np.random.default_rng(5))
    tok = transformers.AutoTokenizer.from_pretrained(str(tiny_electra))
    enc = tok(TEXT, return_tensors="pt")
    ids = enc["input_ids"][0].tolist()
    positions = [c.position for c in result.corruptions]
    assert len(set(positions)) == 4 and all(0 < p < len(ids) - 1 for p in positions)  # never [CLS]/[SEP]
    assert [c.original_id for c in result.corruptions] == [ids[p] for p in positions]
    # the generator saw [MASK] at the four positions: its softmax there gives each sample's probability
    generator = transformers.AutoModelForMaskedLM.from_pretrained(str(tiny_electra_generator)).eval()
    masked = enc["input_ids"].clone()
    masked[0, positions] = tok.mask_token_id
    with torch.inference_mode():
        gen_probs = generator(input_ids=masked, attention_mask=enc["attention_mask"],
                              token_type_ids=enc["token_type_ids"]).logits[0].softmax(-1)
    assert [c.generator_probability for c in result.corruptions] == pytest.approx(
        [gen_probs[c.position, c.sampled_id].item() for c in result.corruptions], abs=1e-5)
    # the discriminator scores the corrupted ids
    corrupted = list(ids)
    for c in result.corruptions:
        corrupted[c.position] = c.sampled_id
    discriminator = transformers.AutoModelForPreTraining.from_pretrained(str(tiny_electra)).eval()
    with torch.inference_mode():
        probs = torch.sigmoid(discriminator(input_ids=torch.tensor([corrupted]), attention_mask=enc["attention_mask"],
                                            token_type_ids=enc["token_type_ids"]).logits[0]).tolist()
    assert [t.id for t in result.tokens] == corrupted
    assert [t.probability for t in result.tokens] == pytest.approx(probs, abs=1e-5)
    replaced = {c.position for c in result.corruptions if c.sampled_id != c.original_id}
    assert {t.position for t in result.tokens if t.swapped} == replaced
    caught = result.caught
    assert caught["replaced"] == len(replaced) and caught["original"] == len(ids) - 2 - len(replaced)
    assert caught["caught"] == sum(probs[p] > 0.5 for p in replaced)


def test_seed_repeats_and_differs(corrupter):
    one = corrupter.corrupt(TEXT, 3, np.random.default_rng(11)).as_record()
    two = corrupter.corrupt(TEXT, 3, np.random.default_rng(11)).as_record()
    assert one == two
    others = [corrupter.corrupt(TEXT, 3, np.random.default_rng(s)).as_record()["corruptions"] for s in (1, 2)]
    assert any(o != one["corruptions"] for o in others)


def test_command_seed_and_errors(run_output, capsys, tiny_electra, tiny_electra_generator, tiny_albert):
    from bertcli.commands.detect import detect

    options = dict(model=str(tiny_electra), replace=None, file=None, corrupt=2, generator=str(tiny_electra_generator),
                   seed=4, device="cpu", fmt="json", quiet=False)
    detect([TEXT, "hello world"], **options)
    first = capsys.readouterr()
    detect([TEXT, "hello world"], **options)
    assert capsys.readouterr().out == first.out and first.err == ""  # a given seed is not announced
    recs = json.loads(first.out)
    assert [r["line"] for r in recs] == [1, 2] and {r["seed"] for r in recs} == {4}
    assert recs[0]["corruptions"] != recs[1]["corruptions"]  # one rng stream over the texts
    with pytest.raises(BadInputError, match=r"^text 1: 4 token\(s\) to corrupt, fewer than --corrupt 5$"):
        detect(["hello world"], **{**options, "corrupt": 5})  # the tiny vocabulary: hell ##o wor ##ld
    with pytest.raises(UsageError, match="--replace and --corrupt do not go together"):
        detect([TEXT], **{**options, "replace": ["2=dog"]})
    with pytest.raises(UsageError, match="--seed goes with --corrupt N"):
        detect([TEXT], **{**options, "corrupt": None, "generator": None})
    with pytest.raises(UsageError, match="different vocabularies"):
        detect([TEXT], **{**options, "generator": str(tiny_albert)})
