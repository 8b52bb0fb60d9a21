"""A real C extension module, compiled in the test with this interpreter's own compiler and
headers: single-phase initialisation (PyModule_Create), so it declares neither Py_mod_gil
(importing it turns the GIL back on) nor support for subinterpreters (they refuse it)."""

import os
import shlex
import shutil
import subprocess
import sysconfig
from pathlib import Path
from typing import NoReturn

import pytest

INSTALL_HINT = "install a C compiler (Debian's build-essential, as the interpreter's build does)"

SOURCE = """\
#include <Python.h>

static PyObject *answer(PyObject *self, PyObject *unused) { return PyLong_FromLong(42); }

static PyMethodDef methods[] = {{"answer", answer, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "%(name)s", NULL, -1, methods};

PyMODINIT_FUNC PyInit_%(name)s(void) { return PyModule_Create(&module); }
"""


def skip_or_fail(message: str) -> NoReturn:
    """Skip with the message, or fail under CI, where everything the suite needs is installed."""
    if os.environ.get("CI", "").lower() not in {"", "0", "false"}:
        pytest.fail(message)
    pytest.skip(message)


def compile_legacy_extension(directory: Path, name: str) -> Path:
    """`name`, an extension module without Py_mod_gil, built into `directory` (skipped, or
    failed under CI, without a C compiler or the interpreter's headers)."""
    compiler = shlex.split(sysconfig.get_config_var("CC") or "cc")
    include = Path(sysconfig.get_paths()["include"])
    if shutil.which(compiler[0]) is None:
        skip_or_fail(f"no C compiler ({compiler[0]}): {INSTALL_HINT}")
    if not (include / "Python.h").is_file():
        skip_or_fail(f"the interpreter's headers are not installed ({include}/Python.h)")
    source = directory / f"{name}.c"
    source.write_text(SOURCE % {"name": name})
    module = directory / f"{name}{sysconfig.get_config_var('EXT_SUFFIX')}"
    built = subprocess.run(
        [*compiler, "-shared", "-fPIC", f"-I{include}", str(source), "-o", str(module)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    return module
