# Cython declarations for accumulator.py: when the package is built with Cython (setup.py), the module is
# compiled with these C types; without Cython it runs as plain Python. Keep in step with the .py.
cimport cython


cdef class ProducerBatch:
    cdef public list _callbacks, deltas, values
    cdef public object _event, _lock, _waiter, encoded, error, headers, keys, partition, topic, tp
    cdef public Py_ssize_t size
    cdef public double created, deadline, retry_at
    cdef public bint done, full
    cdef public long long base_offset, first_timestamp, max_timestamp


@cython.final
@cython.freelist(256)
cdef class RecordFuture:
    cdef public ProducerBatch _batch
    cdef public Py_ssize_t _index


@cython.final
cdef class RecordAccumulator:
    cdef public dict partition_counts, _sticky
    cdef public object partitioner, clock, lock, wakeup
    cdef public Py_ssize_t batch_size, buffer_memory, buffered
    cdef public double linger, delivery_timeout
    cdef public dict _queues, _open
    cdef public set _incomplete
    cdef public bint _wake_pending, _exhausted, _closed
    cdef public int _flushing

    @cython.locals(now_ns=cython.longlong, timestamp=cython.longlong, size=Py_ssize_t, buffered=Py_ssize_t, index=Py_ssize_t, batch=ProducerBatch, future=RecordFuture)
    cpdef object append(self, object blocked, object topic, object value=*, object key=*, object headers=*,
                        object partition=*, object timestamp_ms=*)
