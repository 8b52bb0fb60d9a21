"""Image jobs and batches: submission, the queue's records, results."""
