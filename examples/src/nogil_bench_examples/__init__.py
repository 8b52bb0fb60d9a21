"""Three example workloads for nogil-bench, with answers that differ: pure Python (parallel
only with the GIL off), a C call that releases the GIL (parallel either way), and threads
contending on one shared object.

Nothing is imported here: subinterpreters import `nogil_bench_examples.tasks`, and with it this
package, so it must stay as light as the tasks module (see docs/your-code.md).
"""
