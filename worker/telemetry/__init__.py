"""What a worker node tells an operator: Prometheus metrics of its tasks and its pool."""
