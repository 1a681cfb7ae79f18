"""Run infrastructure: command-line helpers, CPU runtime settings, interrupts, TensorBoard logging
and IO, and checkpoints. The library below never imports it."""
