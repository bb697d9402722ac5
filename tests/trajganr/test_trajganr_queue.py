"""The MoCo-style queue is FIFO: the oldest entries are overwritten first."""
import torch

from trajzoo_trajganr.queue import LocationQueue


def test_queue_fifo():
    q = LocationQueue(3, 1)
    assert q.contents()[0].shape == (0, 1)
    q.enqueue(torch.tensor([[1.0], [2.0]]), torch.tensor([1, 2]))
    emb, ids = q.contents()
    assert emb[:, 0].tolist() == [1.0, 2.0] and ids.tolist() == [1, 2]
    q.enqueue(torch.tensor([[3.0], [4.0]]), torch.tensor([3, 4]))  # 1 is the oldest: overwritten
    emb, ids = q.contents()
    assert emb[:, 0].tolist() == [2.0, 3.0, 4.0] and ids.tolist() == [2, 3, 4]
    q.enqueue(torch.tensor([[5.0], [6.0], [7.0], [8.0]]), torch.tensor([5, 6, 7, 8]))  # more than the size
    emb, ids = q.contents()
    assert emb[:, 0].tolist() == [6.0, 7.0, 8.0] and ids.tolist() == [6, 7, 8]


def test_queue_entries_are_detached():
    q = LocationQueue(2, 2)
    x = torch.ones(1, 2, requires_grad=True)
    q.enqueue(x * 2, torch.tensor([0]))
    assert not q.contents()[0].requires_grad
