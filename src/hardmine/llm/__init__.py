"""Hard tokens and hard sequences for causal language models.

Token level (Rho-1): `token_losses` gives per-token losses [B, T] with the causal shift and -100 ignored;
`TokenSelector(keep, rule="top_loss" | "excess_loss")` turns them into the token weights to back-propagate, with
a reference's token losses from a frozen model (`ReferenceModel`) or a precomputed memory-mapped file
(`TokenLossStore`). Sample level: `sequence_cross_entropy` is the per-sequence loss (mean over label tokens) that
the sampler's policies (online_top_loss, rho_loss, prune_easy) rank. See docs/llm.md.
"""

from hardmine.llm.reference import ReferenceModel
from hardmine.llm.selector import TokenSelector
from hardmine.llm.sequences import sequence_cross_entropy, sequence_losses
from hardmine.llm.store import TokenLossStore
from hardmine.llm.token_loss import IGNORE_INDEX, shift_labels, token_losses

__all__ = ["IGNORE_INDEX", "ReferenceModel", "TokenLossStore", "TokenSelector", "sequence_cross_entropy",
           "sequence_losses", "shift_labels", "token_losses"]
