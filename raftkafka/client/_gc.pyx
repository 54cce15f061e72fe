# cython: language_level=3
"""Taking objects out of sight of the cyclic garbage collector (C API; compiled by setup.py when a C compiler is
there, see ``record_decoder``)."""

cdef extern from "Python.h":
    int PyObject_GC_IsTracked(object op)
    void PyObject_GC_UnTrack(void *op)


def untrack(list objects, Py_ssize_t start=0) -> None:
    """Stop the collector tracking ``objects[start:]``. Only for objects that can never be part of a reference
    cycle: immutable ones holding nothing that could refer back to them."""
    cdef Py_ssize_t i
    for i in range(start, len(objects)):
        item = objects[i]
        if PyObject_GC_IsTracked(item):
            PyObject_GC_UnTrack(<void *>item)
