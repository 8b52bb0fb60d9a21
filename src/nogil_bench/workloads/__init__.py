"""CPU-bound work to run on the runners.

Modules a subinterpreter may import (model, pure, fib) never import Pillow; native and images do.
"""
