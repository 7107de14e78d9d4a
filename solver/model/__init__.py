"""The CP-SAT model: variables, one module per constraint family, the objective."""
