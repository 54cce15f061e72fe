# cython: language_level=3, boundscheck=False, wraparound=False
"""Decoded records built in C (compiled by setup.py when a C compiler is there; ``record_decoder`` builds the same
records with C iterators otherwise)."""

from cpython.long cimport PyLong_AsLongLong, PyLong_FromLongLong
from cpython.object cimport PyObject, PyTypeObject
from cpython.ref cimport Py_DECREF, Py_INCREF
from cpython.tuple cimport PyTuple_SET_ITEM
from libc.limits cimport LLONG_MAX, LLONG_MIN


cdef extern from "Python.h":
    PyObject *PyType_GenericAlloc(PyTypeObject *kind, Py_ssize_t items)  # a tuple subclass's tp_alloc
    void PyObject_GC_UnTrack(void *op)


cdef inline void _put(object record, Py_ssize_t index, object item):
    Py_INCREF(item)
    PyTuple_SET_ITEM(record, index, item)  # steals the reference taken above


def build(list out, type record_type, str topic, object partition, long long base_offset, long long first_timestamp,
          tuple deltas, object keys, tuple values, object headers) -> None:
    """Append to ``out`` one ``record_type`` (a tuple subclass of seven fields: topic, partition, offset, timestamp,
    key, value, headers) per entry of the columns, out of the cyclic garbage collector's sight: a record holds only
    immutable values made before it, so it can never be part of a reference cycle. ``keys``/``headers`` None: no
    record has one. Raises ``TypeError``/``OverflowError`` for a delta that is no 64-bit integer or headers that
    are no sequence."""
    cdef Py_ssize_t index, count = len(values)
    cdef long long delta
    cdef PyTypeObject *kind = <PyTypeObject *>record_type
    cdef PyObject *raw
    cdef object record, header
    if len(deltas) != count or (keys is not None and len(keys) != count) or (
        headers is not None and len(headers) != count
    ):
        raise ValueError("record columns must have the same length")
    for index in range(count):
        delta = PyLong_AsLongLong(deltas[index])
        if (delta > 0 and first_timestamp > LLONG_MAX - delta) or (delta < 0 and first_timestamp < LLONG_MIN - delta):
            raise OverflowError(f"timestamp delta {delta} overflows")
        if headers is None:
            header = ()
        else:
            header = headers[index]
            if type(header) is not tuple:
                header = tuple(header)
        raw = PyType_GenericAlloc(kind, 7)
        if raw is NULL:
            raise MemoryError()
        record = <object>raw  # a second reference: give back the one tp_alloc made
        Py_DECREF(record)
        PyObject_GC_UnTrack(raw)
        _put(record, 0, topic)
        _put(record, 1, partition)
        _put(record, 2, PyLong_FromLongLong(base_offset + index))
        _put(record, 3, PyLong_FromLongLong(first_timestamp + delta))
        _put(record, 4, None if keys is None else keys[index])
        _put(record, 5, values[index])
        _put(record, 6, header)
        out.append(record)
