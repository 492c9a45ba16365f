from tests.receiver import hooked, receiver  # noqa: F401  (fixtures)
