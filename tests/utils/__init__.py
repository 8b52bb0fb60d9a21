"""What the tests share: factories, waits, and the real servers they start. Tests import from
here, never from one another."""
