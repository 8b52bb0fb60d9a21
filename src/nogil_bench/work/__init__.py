"""Queued work and what drives it.

Single jobs, batches and benchmarks are kinds of work (`core.work.WorkKind`, kept below every
domain so that no domain imports this package back), each one module in the domain that owns
it (`jobs/work.py`, `benchmarks/work.py`), listed once in `registry.py`. Two drivers run them
through the same interface: the embedded executor (`executor.py`) claims and runs queued work
in this process; with a broker, the service's dispatcher hands it to Celery and `nogil-bench
worker` claims and runs it elsewhere (`nogil_bench.distributed`). The rules that hold for
every kind (claims, leases, attempts, putting back) live in `queue.py`.
"""
