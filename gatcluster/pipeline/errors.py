"""The error a pipeline stage reports as a usage problem: something the user can fix."""


class StageError(RuntimeError):
    """A problem the user can fix (a setting, a missing input); reported without a traceback (exit 2)."""
