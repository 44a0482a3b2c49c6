"""Inside one batch, no memory needed: per-sample losses, a selector, and the reduction to one loss."""
