"""Versions, as in the Python package's module of that name."""

from . import _lib

#: The version of the Python package's persistence format (this library reads it and writes its own).
CURRENT_DATA_VERSION = 1
#: The C library's version.
package_version = _lib.version()
