"""The compiled parts of the client, built by Cython when a C compiler and Python's headers are there:
``raftkafka/client/accumulator.py`` with the C types of ``accumulator.pxd`` (the producer's per-record path,
about twice as fast) and ``raftkafka/client/_records.pyx`` (the consumer's records built in one C loop, out of the
garbage collector's sight). Both are optional: without a compiler the package installs as pure Python, the
accumulator runs interpreted and ``record_decoder`` builds the records with C iterators;
``RAFTKAFKA_NO_EXTENSIONS=1`` at install asks for that on purpose."""

import os

from setuptools import Extension, setup

try:
    from Cython.Build import cythonize
except ImportError:  # building without Cython (pyproject.toml asks for it): pure Python
    cythonize = None

extensions: list[Extension] = []
if cythonize is not None and not os.environ.get("RAFTKAFKA_NO_EXTENSIONS"):
    extensions = cythonize(
        [
            Extension("raftkafka.client.accumulator", ["raftkafka/client/accumulator.py"]),
            Extension("raftkafka.client._records", ["raftkafka/client/_records.pyx"]),
        ],
        compiler_directives={"language_level": 3, "annotation_typing": False, "auto_pickle": False},
        quiet=True,
    )
    for extension in extensions:
        extension.optional = True  # a failed C build warns and leaves the module interpreted (cythonize drops it)

setup(ext_modules=extensions)
