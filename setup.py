"""Builds the optional C fast path of the log reader (events/_cdecode.c).

pyproject.toml holds all the metadata; this file only declares the extension, as
`optional`: without a C compiler the install still succeeds and the reader uses its
pure-Python path (docs/log-format.md, "How the reader decodes").
"""
from setuptools import Extension, setup

setup(ext_modules=[Extension("fadumpsim.events._cdecode", ["events/_cdecode.c"],
                             extra_compile_args=["-O2", "-std=c11"], optional=True)])
