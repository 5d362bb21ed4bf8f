from tests.brain_case import brain_case  # noqa: F401
