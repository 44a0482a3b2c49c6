"""Integrations with the trainers people use: `lightning` (HardMiningCallback), `transformers`
(HardMiningTrainer) and `torchvision` (hard_mining for its detectors). Each is an optional extra; the core never
imports them."""
