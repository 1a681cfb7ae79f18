"""The languages: tokens and the operator table, the expression language, Boolean tasks, LTL,
reward machines (and their YAML files), skill machines, and the project's strict YAML reader.
They import only the maths."""
