"""One workload through several runners in both GIL modes, measured by the bench engine."""
