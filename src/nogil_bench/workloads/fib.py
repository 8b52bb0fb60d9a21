def fib(n: int) -> int:
    """Deliberately naive recursion: pure interpreter work, the classic GIL benchmark."""
    return n if n < 2 else fib(n - 1) + fib(n - 2)
