"""The compiled part of switchman: the routing hot path's loops (switchman/_hotpath.c).

Everything else is declared in pyproject.toml. The extension is optional: where no C
compiler is at hand the install goes on, and switchman takes the pure-Python path, which
returns the same values more slowly.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("switchman._hotpath", ["switchman/_hotpath.c"], optional=True)])
