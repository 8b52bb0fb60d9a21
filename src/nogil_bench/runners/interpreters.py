import pickle
import re
from collections.abc import Callable, Sequence
from concurrent import interpreters
from concurrent.futures import Executor, InterpreterPoolExecutor
from concurrent.interpreters import ExecutionFailed, NotShareableError
from typing import Any

from nogil_bench.runners.base import ExecutorRunner, UnsupportedWorkError, pickling_problem

REFUSED_MODULE = re.compile(r"module (\S+) does not support loading in subinterpreters")


class InterpreterRunner(ExecutorRunner):
    """Python 3.14's subinterpreter pool: one interpreter per worker, objects passed by pickle.

    Extension modules that do not support subinterpreters (Pillow's among them) cannot be
    imported there, so only pure-Python work runs on this runner.
    """

    name = "interpreters"
    order = 5
    runs_native_extensions = False

    @classmethod
    def unsupported_reason(cls, fn: Callable[[Any], object], tasks: Sequence[object]) -> str | None:
        """Pickling, then what a worker interpreter does first: unpickle the function and a
        task, importing their modules, which an extension without subinterpreter support
        refuses."""
        if (problem := pickling_problem(fn, tasks)) is not None:
            return problem
        interpreter = interpreters.create()
        try:
            interpreter.prepare_main(payload=pickle.dumps((fn, tasks[:1])))
            interpreter.exec("import pickle; pickle.loads(payload)")
        except ExecutionFailed as failed:
            message = failed.excinfo.msg or ""
            if refused := REFUSED_MODULE.search(message):
                return f"module {refused.group(1)!r} does not support subinterpreters"
            return f"a subinterpreter cannot load the work ({failed.excinfo.formatted})"
        finally:
            interpreter.close()
        return None

    def _create_executor(self) -> Executor:
        return InterpreterPoolExecutor(max_workers=self.workers)

    def _translate(self, error: BaseException) -> BaseException:
        # An import refused inside the subinterpreter, or a task or argument that could not be
        # unpickled there because its module needs such an import.
        refused_import = isinstance(error, ImportError) and "subinterpreter" in str(error)
        if refused_import or isinstance(error, NotShareableError):
            return UnsupportedWorkError(
                f"the {self.name} runner cannot run this work ({type(error).__name__}: {error}). "
                "Extension modules such as Pillow cannot be loaded in subinterpreters, so tasks "
                "and their arguments must come from pure-Python modules; run native operations "
                "on the threads, processes, asyncio or sequential runner."
            )
        return error
