"""The maths: pure tensor functions of soft Q-learning, the composition operators, the exact oracles
(tabular, linear-quadratic, point worlds), multi-objective metrics and the levers that limit
optimisation. Nothing here imports the rest of the library."""
