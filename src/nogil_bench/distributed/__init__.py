"""Distributed execution on Celery with Redis as the broker (NOGIL_BENCH_BROKER_URL).

The database stays the one record of every job, batch and benchmark; Celery carries which
row to run next. The service's dispatcher (dispatch.py) hands queued rows to the broker and
marks them dispatched; `nogil-bench worker` (worker.py) runs a task only if its rows are still
queued, claiming them as the embedded executor does (attempts, leases, boot ids). So a task
delivered twice (a worker killed before it acknowledged, a redispatch) runs its work once,
and a dead worker's leases run out and put its work back in the queue, to be handed out again.
"""
