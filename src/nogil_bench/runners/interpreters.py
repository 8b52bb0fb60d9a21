from concurrent.futures import Executor, InterpreterPoolExecutor
from concurrent.interpreters import NotShareableError

from nogil_bench.runners.base import ExecutorRunner, UnsupportedWorkError


class InterpreterRunner(ExecutorRunner):
    """Python 3.14's subinterpreter pool: one interpreter per worker, objects passed by pickle.

    Extension modules that do not support subinterpreters (Pillow's among them) cannot be
    imported there, so only pure-Python work runs on this runner.
    """

    name = "interpreters"
    order = 5
    runs_native_extensions = False

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
