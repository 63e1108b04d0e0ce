"""Per-engine implementations of the built-in workloads, one module per engine. Each
function takes a :class:`tapegrad.bench.Case` and returns ``(step, outputs)``: ``step()``
is the timed unit of work, ``outputs()`` the values the correctness check compares
(``{"loss": ..., "0.weight": ..., ...}`` for training workloads). A module is imported
only when its engine runs, so its library may be missing everywhere else."""
