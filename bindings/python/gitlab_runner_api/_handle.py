"""Ownership of one C handle: freed by close(), by the end of a `with` block, or when the Python
object is garbage-collected (__del__)."""

from . import _lib


class Handle(object):
    """Base of the classes that own a C handle (`_ptr`), freed with the C function `_free_fn`."""

    _free_fn = None
    _ptr = None

    @classmethod
    def _adopt(cls, ptr):
        """A new object owning `ptr`, without running the class's __init__."""
        obj = cls.__new__(cls)
        obj._ptr = ptr
        return obj

    def _handle(self):
        """The C handle; ValueError once closed."""
        if not self._ptr:
            raise ValueError("this %s is closed" % type(self).__name__)
        return self._ptr

    @property
    def closed(self):
        """Whether close() was called (the handle is freed)."""
        return not self._ptr

    def close(self):
        """Frees the C handle now (idempotent). The object is unusable afterwards."""
        ptr, self._ptr = self._ptr, None
        if ptr:
            getattr(_lib.lib, self._free_fn)(ptr)

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: the library may already be gone
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
