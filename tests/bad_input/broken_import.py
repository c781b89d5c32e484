"""A model file that does not import: it needs a package that is not installed."""
import not_a_real_package  # noqa: F401


def build():
    return not_a_real_package.Model()
