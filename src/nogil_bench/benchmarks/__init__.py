"""One workload through several runners, one after another, compared."""
