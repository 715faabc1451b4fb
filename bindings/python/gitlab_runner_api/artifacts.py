"""Artifacts: files uploaded with Job.set_success() / Job.set_failed() (not in the Python
package, whose set_success(artifacts=...) raised NotImplementedError)."""

from . import _lib
from ._handle import Handle
from ._lib import byref, lib


class Artifacts(Handle):
    """A list of artifact files for one job."""

    _free_fn = "glr_artifacts_free"

    def __init__(self):
        raw = _lib.ArtifactsP()
        _lib.call("glr_artifacts_new", byref(raw))
        self._ptr = raw

    def add_file(self, path, name, artifact_type=None, artifact_format=None, expire_in=None):
        """Adds a file you prepared: `name` is what GitLab stores (e.g. "artifacts.zip");
        `artifact_type` None means "archive", `artifact_format` None "zip", `expire_in` None the
        project's default (e.g. "1 week"). Returns self."""
        _lib.call(
            "glr_artifacts_add_file",
            self._handle(),
            _lib.c_str(path, "path"),
            _lib.c_str(name, "name"),
            _lib.c_str(artifact_type, "artifact_type"),
            _lib.c_str(artifact_format, "artifact_format"),
            _lib.c_str(expire_in, "expire_in"),
        )
        return self

    def collect(self, job, workdir, job_succeeded):
        """Builds the job's own `artifacts:` (paths, exclude, untracked, when, formats) from
        `workdir`, as the official runner does. Returns self."""
        _lib.call("glr_artifacts_collect", self._handle(), job._handle(), _lib.c_str(workdir, "workdir"),
                  1 if job_succeeded else 0)
        return self

    def __len__(self):
        return lib.glr_artifacts_count(self._handle())


def extract_artifacts(zip_path, dest_dir):
    """Extracts a zip archive into `dest_dir`, refusing entries that would escape it."""
    _lib.call("glr_extract_artifacts", _lib.c_str(zip_path, "zip_path"), _lib.c_str(dest_dir, "dest_dir"))


__all__ = ["Artifacts", "extract_artifacts"]
