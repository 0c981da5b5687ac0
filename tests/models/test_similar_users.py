"""Similar-user search over many users: blocks bounded in size, the same neighbours as one big block."""

import numpy as np

from recfuse.models.similar import most_similar_users


def test_small_blocks_find_the_same_neighbours():
    emb = np.random.default_rng(0).normal(size=(300, 8))
    whole = most_similar_users(emb, k=3)
    assert np.array_equal(most_similar_users(emb, k=3, max_block=300 * 7), whole)  # 7 users per block
    assert np.array_equal(most_similar_users(emb, k=3, max_block=1), whole)  # one at a time
    assert not (whole == np.arange(300)[:, None]).any()  # never oneself
