"""What a training script touches: Task, Logger, parameters, capture (issue: the SDK)."""
