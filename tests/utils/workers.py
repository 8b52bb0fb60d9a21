"""Celery workers as the tests start them."""

# A sitecustomize that makes importing Celery's shell-only dependencies fail.
REFUSE_SHELL_MODULES = """
import sys

class RefuseShellModules:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {"click_repl", "prompt_toolkit", "wcwidth"}:
            raise ImportError(f"{name} is not in the production image")

sys.meta_path.insert(0, RefuseShellModules())
"""
