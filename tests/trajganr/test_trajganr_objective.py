"""InfoNCE of eq. 6 with queue negatives and several positives, against a hand computation."""
import math

import pytest
import torch

from trajzoo_trajganr.objective import info_nce_multi, pretraining_loss


def cos(a, b):
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))


def test_single_positive_matches_hand_computation():
    a = torch.tensor([[1.0, 0.0]])
    p = torch.tensor([[1.0, 1.0]])
    n = torch.tensor([[0.0, 1.0], [-1.0, 0.5]])
    tau = 0.5
    sp = cos(a[0], p[0]) / tau
    sn = [cos(a[0], x) / tau for x in n]
    expected = -math.log(math.exp(sp) / (math.exp(sp) + sum(math.exp(s) for s in sn)))
    got = info_nce_multi(a, p, torch.tensor([7]), torch.tensor([7]), n, torch.tensor([1, 2]), tau)
    assert float(got) == pytest.approx(expected, rel=1e-6)


def test_co_located_trajectories_are_extra_positives_and_never_negatives():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.tensor([[1.0, 0.2], [0.3, 1.0]])  # both samples at location 5
    n = torch.tensor([[0.0, -1.0], [1.0, 1.0]])
    nid = torch.tensor([-1, 5])  # the second queue entry is location 5 itself: not a negative
    tau = 0.1
    terms = []
    for i in range(2):
        neg = cos(a[i], n[0]) / tau
        for j in range(2):
            s = cos(a[i], p[j]) / tau
            terms.append(-math.log(math.exp(s) / (math.exp(s) + math.exp(neg))))
    got = info_nce_multi(a, p, torch.tensor([5, 5]), torch.tensor([5, 5]), n, nid, tau)
    assert float(got) == pytest.approx(sum(terms) / 4, rel=1e-5)


def test_pretraining_loss_sums_the_modality_pairs():
    torch.manual_seed(0)
    t, l, i = torch.randn(4, 8), torch.randn(4, 8), torch.randn(4, 8)
    ids = torch.tensor([0, 1, 2, 3])
    q, qid = torch.randn(6, 8), torch.full((6,), -1)
    loss, stats = pretraining_loss(t, l, i, ids, q, qid, 0.07)
    tl = info_nce_multi(t, l, ids, ids, q, qid, 0.07)
    il = info_nce_multi(i, l, ids, ids, q, qid, 0.07)
    ti = info_nce_multi(t, i, ids, ids, i, ids, 0.07)  # in-batch images of other locations
    assert float(loss) == pytest.approx(float(tl + il + ti), rel=1e-6)
    only, st = pretraining_loss(t, l, None, ids, q, qid, 0.07)
    assert float(only) == pytest.approx(float(tl)) and st["L_IL"] == 0.0
