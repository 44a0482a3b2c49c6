"""Integrations with the trainers people use: `lightning` (HardMiningCallback) and `transformers`
(HardMiningTrainer). Each is an optional extra; the core never imports them."""
