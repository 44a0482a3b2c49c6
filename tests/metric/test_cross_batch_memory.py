"""CrossBatchMemory: ring order, staleness, exact state round trip, mining against it, DDP all-gather."""

import socket
import subprocess
import sys
import textwrap

import pytest
import torch

from hardmine.metric import BatchHardMiner, CrossBatchMemory, EuclideanDistance


def batch(step, n=3, dim=4):
    return torch.full((n, dim), float(step)) + torch.arange(n)[:, None] / 10, torch.arange(n) + 10 * step


def test_ring_keeps_the_newest_in_order():
    memory = CrossBatchMemory(size=5, embedding_dim=4)
    assert len(memory) == 0 and memory.get()[0].shape == (0, 4)
    for step in range(3):
        memory.enqueue(*batch(step), step=step)
    emb, labels = memory.get()
    assert labels.tolist() == [11, 12, 20, 21, 22] and torch.equal(emb, torch.cat([batch(1)[0][1:], batch(2)[0]]))
    memory.enqueue(*batch(7, n=8), step=7)  # larger than the memory: its last 5 rows
    assert memory.get()[1].tolist() == [73, 74, 75, 76, 77] and len(memory) == 5


def test_max_age_leaves_out_stale_entries():
    memory = CrossBatchMemory(size=20, embedding_dim=4, max_age=1)
    for step in range(4):
        memory.enqueue(*batch(step), step=step)
    assert memory.get(step=3)[1].tolist() == [20, 21, 22, 30, 31, 32]
    assert memory.get(step=10)[1].numel() == 0
    assert memory.get()[1].numel() == 12  # without a step nothing is stale


def test_state_round_trip_is_exact(tmp_path):
    memory = CrossBatchMemory(size=7, embedding_dim=4, max_age=3)
    for step in range(4):
        memory.enqueue(*batch(step), step=step)
    torch.save(memory.state_dict(), tmp_path / "memory.pt")
    restored = CrossBatchMemory(size=7, embedding_dim=4, max_age=3)
    restored.load_state_dict(torch.load(tmp_path / "memory.pt", weights_only=True))
    for step in (4, 5):
        x, y = batch(step)
        for a, b in zip(memory.mine(BatchHardMiner(), x, y, step)[0], restored.mine(BatchHardMiner(), x, y, step)[0]):
            assert torch.equal(a, b)
        assert all(torch.equal(u, v) for u, v in zip(memory.get(step), restored.get(step)))
    state = memory.state_dict()
    with pytest.raises(ValueError, match="missing keys \\['cursor'\\]"):
        restored.load_state_dict({k: v for k, v in state.items() if k != "cursor"})
    with pytest.raises(ValueError, match=r"state\['embeddings'\] has shape \(7, 3\)"):
        restored.load_state_dict({**state, "embeddings": torch.zeros(7, 3)})
    with pytest.raises(ValueError, match="cursor"):
        restored.load_state_dict({**state, "cursor": torch.tensor(9)})


def test_mine_against_batch_and_memory(ref):
    g = torch.Generator().manual_seed(0)
    memory = CrossBatchMemory(size=16, embedding_dim=5)
    old_x, old_y = torch.randn(10, 5, generator=g), torch.randint(0, 3, (10,), generator=g)
    memory.enqueue(old_x, old_y, step=0)
    x = torch.randn(6, 5, generator=g).requires_grad_(True)
    y = torch.randint(0, 3, (6,), generator=g)
    (a, p, n), ref_emb, ref_labels = memory.mine(BatchHardMiner(), x, y, step=1)
    assert ref_emb.requires_grad and torch.equal(ref_labels, torch.cat([y, old_y]))
    d = ref.dissimilarity(EuclideanDistance(), x.detach(), ref_emb.detach())
    pos, neg = ref.relations(y.tolist(), ref_labels.tolist(), exclude_self=True)
    want = []
    for i in range(6):
        ps = [j for j in range(16) if pos[i][j]]
        ns = [j for j in range(16) if neg[i][j]]
        if ps and ns:
            want.append((i, min(ps, key=lambda j: (-d[i][j], j)), min(ns, key=lambda j: (d[i][j], j))))
    assert ref.as_set((a, p, n)) == want
    assert len(memory) == 16 and torch.equal(memory.get()[1][-6:], y)


def test_multi_hot_labels_with_a_callable_mask():
    memory = CrossBatchMemory(size=8, embedding_dim=3, label_shape=(4,))
    tags = torch.tensor([[1, 0, 0, 1], [0, 1, 0, 0], [1, 0, 0, 0], [0, 1, 1, 0]])
    memory.enqueue(torch.randn(4, 3), tags, step=0)
    miner = BatchHardMiner(positive_mask=lambda a, b: (a @ b.T) > 0)
    (a, p, n), _, ref_labels = memory.mine(miner, torch.randn(4, 3), tags, step=1)
    assert ((tags[a] * ref_labels[p]).sum(1) > 0).all() and ((tags[a] * ref_labels[n]).sum(1) == 0).all()


def test_argument_errors():
    with pytest.raises(ValueError, match="size must be >= 1, got 0"):
        CrossBatchMemory(0, 4)
    memory = CrossBatchMemory(4, 4)
    with pytest.raises(ValueError, match="embeddings has dim 3 but the memory holds dim 4"):
        memory.enqueue(torch.randn(2, 3), torch.tensor([0, 1]), step=0)
    with pytest.raises(TypeError, match="labels must hold integers"):
        memory.enqueue(torch.randn(2, 4), torch.tensor([0.0, 1.0]), step=0)
    with pytest.raises(ValueError, match=r"labels must have shape \(2,\), got \(3,\)"):
        memory.enqueue(torch.randn(2, 4), torch.tensor([0, 1, 2]), step=0)
    with pytest.raises(ValueError, match="step must be >= 0, got -1"):
        memory.enqueue(torch.randn(2, 4), torch.tensor([0, 1]), step=-1)
    with pytest.raises(ValueError, match="non-finite"):
        memory.enqueue(torch.tensor([[0.0, 1, 2, float("inf")]]), torch.tensor([0]), step=0)


WORKER = textwrap.dedent("""
    import sys
    import torch
    import torch.distributed as dist
    from hardmine.metric import CrossBatchMemory
    rank, port, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    memory = CrossBatchMemory(size=10, embedding_dim=3)
    for step in range(3):
        n = 2 + rank + step
        x = torch.full((n, 3), 10.0 * rank + step) + torch.arange(n)[:, None] / 100
        memory.enqueue(x, torch.full((n,), 100 * rank + step), step=step)
    torch.save(memory.state_dict(), out)
    dist.destroy_process_group()
""")


def test_distributed_enqueue_gathers_every_rank(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    outs = [tmp_path / f"rank{r}.pt" for r in range(2)]
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(r), str(port), str(outs[r])],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for r in range(2)]
    for proc in procs:
        output, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, output.decode()[-2000:]
    expected = CrossBatchMemory(size=10, embedding_dim=3)
    for step in range(3):
        parts = []
        for rank in range(2):
            n = 2 + rank + step
            parts.append((torch.full((n, 3), 10.0 * rank + step) + torch.arange(n)[:, None] / 100,
                          torch.full((n,), 100 * rank + step)))
        expected.enqueue(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]), step=step)
    for out in outs:
        state = torch.load(out, weights_only=True)
        assert all(torch.equal(state[k], v) for k, v in expected.state_dict().items() if isinstance(v, torch.Tensor))
