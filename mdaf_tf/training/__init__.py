"""The training recipe: schedule, optimizer, exact metrics, checkpoints, reports and the runner."""
