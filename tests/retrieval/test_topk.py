import numpy as np

from hardmine.retrieval.topk import merge_topk


def test_merge_equals_topk_of_the_union_with_ties_by_id():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 6, size=(4, 30)).astype(np.float32)  # many exact ties
    ids = np.tile(np.arange(30), (4, 1))
    parts = []
    for lo, hi in ((0, 10), (10, 22), (22, 30)):
        block_s, block_i = scores[:, lo:hi], ids[:, lo:hi]
        order = np.argsort(-block_s, axis=1, kind="stable")[:, :7]
        parts.append((np.take_along_axis(block_s, order, 1), np.take_along_axis(block_i, order, 1)))
    s, i = merge_topk(parts, 7)
    for row in range(4):
        expected = np.lexsort((ids[row], -scores[row]))[:7]
        assert i[row].tolist() == expected.tolist()
        assert s[row].tolist() == scores[row, expected].tolist()


def test_merge_pads_and_puts_padding_last():
    s, i = merge_topk([(np.array([[0.5, -np.inf]], np.float32), np.array([[3, -1]])),
                       (np.array([[-2.0]], np.float32), np.array([[9]]))], 5)
    assert i.tolist() == [[3, 9, -1, -1, -1]]
    assert s[0, :2].tolist() == [0.5, -2.0] and np.isneginf(s[0, 2:]).all()
