"""Measuring runs: psutil figures, pyperf-style statistics, result documents and charts."""
