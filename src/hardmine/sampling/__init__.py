"""The dataset level: a score memory becomes the next batches through a policy, its guards and schedules."""
