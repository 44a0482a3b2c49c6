"""The vectorised building blocks against plain loops."""

import torch

from hardmine.metric import _ops


def test_row_first_argmin_breaks_ties_created_by_finish():
    one_up = torch.nextafter(torch.tensor(1.0), torch.tensor(2.0))
    assert torch.sqrt(one_up) == 1.0  # two squared distances, one distance
    raw = torch.full((3, 150), 9.0)
    raw[0, 3], raw[0, 70] = one_up, 1.0  # raw minimum at 70, but sqrt ties it with column 3
    raw[1, 149] = 0.5  # in the tail past the last full chunk
    raw[2, 64], raw[2, 65] = 2.0, 2.0
    value, col = _ops.row_first_argmin(raw.clone(), torch.sqrt_)
    assert col.tolist() == [3, 149, 64]
    assert torch.equal(value, torch.sqrt(torch.tensor([1.0, 0.5, 2.0])))


def test_row_first_argmin_matches_a_loop():
    g = torch.Generator().manual_seed(0)
    raw = torch.randint(0, 5, (7, 200), generator=g).float()
    value, col = _ops.row_first_argmin(raw.clone(), lambda v: v)
    for i, row in enumerate(raw.tolist()):
        assert value[i] == min(row) and col[i] == row.index(min(row))


def test_label_positives_match_a_loop():
    labels = torch.tensor([3, 1, 3, 7, 1, 3, 9])
    ref = torch.tensor([1, 3, 3, 5, 1, 7, 3, 3])
    for query, reference, exclude_self in ((labels, labels, True), (labels, ref, False), (ref[:5], ref, True)):
        cols, valid = _ops.label_positives(query, reference, exclude_self)
        for i, lab in enumerate(query.tolist()):
            want = [j for j, r in enumerate(reference.tolist()) if r == lab and not (exclude_self and i == j)]
            assert cols[i][valid[i]].tolist() == want


def test_padded_by_row():
    cols, valid = _ops.padded_by_row(torch.tensor([0, 0, 2]), torch.tensor([4, 6, 1]), 3)
    assert [c[v].tolist() for c, v in zip(cols, valid)] == [[4, 6], [], [1]]


def test_col_first_argmin_is_row_first_argmin_of_the_transpose():
    g = torch.Generator().manual_seed(1)
    raw = torch.randint(1, 6, (150, 9), generator=g).float()
    raw[149, 2] = 0.0  # in the tail past the last full chunk
    one_up = torch.nextafter(torch.tensor(1.0), torch.tensor(2.0))
    raw[:, 5] = 9.0
    raw[10, 5], raw[100, 5] = one_up, 1.0
    got = _ops.col_first_argmin(raw.clone(), torch.sqrt_)
    want = _ops.row_first_argmin(raw.T.contiguous(), torch.sqrt_)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    assert got[1][2] == 149 and got[1][5] == 10
