"""`nogil-bench measure`, `compare` and `report`, from a checkout (the console command is the
same code: nogil_bench.benchmarks.cli).

    .venv/bin/python scripts/bench_gil.py measure fib --runners threads --workers 4
    .venv/bin/python scripts/bench_gil.py measure pure-python native small-batch --quick
    .venv/bin/python scripts/bench_gil.py compare a.json b.json
"""

import sys

from nogil_bench.benchmarks.cli import main

if __name__ == "__main__":
    sys.exit(main())
