"""Online batch selection (Loshchilov & Hutter 2015): of each candidate batch, back-propagate the highest losses."""

from __future__ import annotations

from hardmine.sampling.policies.candidates import CandidatePolicy


class OnlineTopLossPolicy(CandidatePolicy):
    """Candidate-batch selection by the training loss alone: `hm.build_policy("online_top_loss", candidates=5)`.

    See CandidatePolicy for the loop and the parameters. Loss alone favours mislabeled samples under label noise;
    `rho_loss` subtracts what a reference model cannot learn either, and a NoiseGuard gives suspects the median loss.
    """

    name = "online_top_loss"
