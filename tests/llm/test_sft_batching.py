"""Length-grouped batches: every example once per epoch, random batch order, less padding."""

import numpy as np

from recfuse.llm.sft import length_grouped


def padded(batches, lengths):
    return sum(len(b) * lengths[b].max() for b in batches)


def test_length_grouped_batches_keep_every_example_and_cut_padding():
    rng = np.random.default_rng(0)
    lengths = rng.integers(100, 900, size=203)
    order = rng.permutation(len(lengths))
    grouped = length_grouped(order, lengths, 4, np.random.default_rng(1))
    assert sorted(np.concatenate(grouped).tolist()) == list(range(len(lengths)))
    assert all(1 <= len(b) <= 4 for b in grouped)
    plain = [order[s:s + 4] for s in range(0, len(order), 4)]
    assert padded(grouped, lengths) < 0.8 * padded(plain, lengths)
    # batches come in random order, not sorted by length
    firsts = [lengths[b].max() for b in grouped]
    assert firsts != sorted(firsts)
