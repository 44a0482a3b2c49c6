"""HardMiningSFTTrainer: TRL's `SFTTrainer` with HardMiningTrainer's sampler, token selection and checkpoints.

```python
trainer = HardMiningSFTTrainer(model=model, args=SFTConfig(...), train_dataset=texts, processing_class=tokenizer,
                               hardmine_policy="uniform", hardmine_tokens=hm.llm.TokenSelector(keep=0.6,
                               rule="excess_loss"), hardmine_reference=reference_model)
```
Install with the `trl` extra (`pip install hardmine[trl]`). Packing and padding-free batches join samples into one
row, which per-sample selection cannot follow: keep `packing=False` and `padding_free=False` (the defaults).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from trl import SFTTrainer

from hardmine.integrations.transformers import INDEX_COLUMN, HardMiningTrainer
from hardmine.llm import sequence_cross_entropy


class KeepIndex:
    """A collator around `collator` that carries the `hardmine_index` of each example into the batch (as int64
    [B]): TRL's collators build only the model's columns and would drop it."""

    def __init__(self, collator: Callable[[list[dict[str, Any]]], dict[str, Any]]) -> None:
        self.collator = collator

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        """The wrapped collator's batch, with `hardmine_index` when the examples have one."""
        if not examples or INDEX_COLUMN not in examples[0]:
            return self.collator(examples)
        index = torch.tensor([e[INDEX_COLUMN] for e in examples], dtype=torch.long)
        batch = self.collator([{k: v for k, v in e.items() if k != INDEX_COLUMN} for e in examples])
        return {**batch, INDEX_COLUMN: index}


class HardMiningSFTTrainer(HardMiningTrainer, SFTTrainer):
    """`trl.SFTTrainer` whose training batches come from a HardExampleSampler, with HardMiningTrainer's
    arguments (hardmine_policy, hardmine_tokens, hardmine_reference, ...; see HardMiningTrainer and
    `hardmine.integrations.llm_trainer.TokenSelection`) and SFTTrainer's own.

    The per-sample loss defaults to `hm.llm.sequence_cross_entropy` (the mean over each sequence's label tokens),
    which the sampler's policies rank. Sample ids are rows of the data set SFTTrainer prepared
    (`trainer.train_dataset`, tokenised and possibly shuffled): build a TokenLossStore over that one. Training
    batches bypass SFTTrainer's loss (its entropy and token-accuracy metrics are not logged for them);
    evaluation uses it unchanged.
    """

    def __init__(self, *args: Any, per_sample_loss: Callable[[Any, torch.Tensor], torch.Tensor] =
                 sequence_cross_entropy, **kwargs: Any) -> None:
        config = kwargs.get("args", args[1] if len(args) > 1 else None)
        if getattr(config, "packing", False) or getattr(config, "padding_free", False):
            raise ValueError("args.packing and args.padding_free must be False: they join samples into one row, "
                             "and hardmine selects per sample")
        super().__init__(*args, per_sample_loss=per_sample_loss, **kwargs)
        self.data_collator = KeepIndex(self.data_collator)
