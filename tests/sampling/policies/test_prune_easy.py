"""prune_easy (InfoBatch): the realised keep ratio, the rescaling of kept easy samples, and the annealing."""

import numpy as np

from hardmine import HardExampleSampler, PruneEasyPolicy, ScoreMemory


def test_keep_ratio_weights_and_annealing_match_the_parameters():
    n = 10_000
    rng = np.random.default_rng(0)
    scores = rng.exponential(size=n)
    memory = ScoreMemory(n)
    memory.update(np.arange(n), scores)
    easy_fraction = (scores < scores.mean()).mean()
    policy = PruneEasyPolicy(ratio=0.6, epochs=8, delta=0.75)
    sampler = HardExampleSampler(memory, batch_size=500, policy=policy, seed=1)
    for epoch in range(8):
        seen = {}
        for batch in sampler:
            for i, w in zip(batch, sampler.weights(batch).numpy()):
                seen[i] = w
        keep = sampler.stats()["keep_ratio"]
        if epoch < 6:
            assert abs(keep - (1 - 0.6 * easy_fraction)) < 0.02
            kept = np.fromiter(seen, dtype=np.int64)
            weights = np.array([seen[i] for i in kept])
            easy = scores[kept] < scores.mean()
            np.testing.assert_allclose(weights[easy], 1 / 0.4, rtol=1e-6)
            np.testing.assert_allclose(weights[~easy], 1.0)
            assert abs(weights.sum() - n) < 0.03 * n  # the rescaled subset stands for the whole data set
            assert len(seen) == round(keep * n)
        else:  # the last (1 - delta) of epochs: full data
            assert keep == 1.0 and len(seen) == n and set(sampler.weights(batch).numpy()) == {1.0}
