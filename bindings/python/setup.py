"""Builds the C library with cargo and bundles it into the package (pyproject.toml has the rest).

`pip install ./bindings/python`, `pip wheel ./bindings/python` and `python -m build --wheel
bindings/python` run the setuptools backend on this directory, which is two levels below the
Cargo workspace: build_py runs `cargo build --release --lib` there (a no-op when the release
build is current) and copies libgitlab_runner_api.so into the package, where
gitlab_runner_api._lib looks first. The wheel is then tagged for this platform (py3-none-
linux_x86_64, say): ctypes works with any Python 3, but the library is native code.

Needs Rust (cargo) on the building machine; $CARGO names the cargo to run (default: cargo on
PATH), and cargo's own settings apply (CARGO_TARGET_DIR, ...). An sdist cannot be built into a
wheel: it has no Rust sources.
"""

import atexit
import json
import os
import shutil
import subprocess
import tempfile

from setuptools import Distribution, setup
from setuptools.command.bdist_wheel import bdist_wheel  # setuptools >= 70.1 (pyproject.toml asks 77)
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
WORKSPACE = os.path.normpath(os.path.join(HERE, os.pardir, os.pardir))
#: The library's file name, as cargo writes it and as gitlab_runner_api._lib.BUNDLED expects it.
LIBRARY = "libgitlab_runner_api.so"


#: What cargo sets for the programs it runs (pip started by `cargo test` or `cargo run`): for a
#: cargo started from there they only say where that program came from, and some build scripts
#: of dependencies (ring's) rerun when one of them changes, rebuilding the whole library.
_CARGO_RUN_VARIABLES = ("CARGO_MANIFEST_DIR", "CARGO_MANIFEST_PATH", "CARGO_CRATE_NAME", "CARGO_BIN_NAME",
                        "CARGO_PRIMARY_PACKAGE", "CARGO_TARGET_TMPDIR", "OUT_DIR")


def cargo_environment():
    """This process's environment without what a surrounding cargo set for its programs."""
    return {
        name: value
        for name, value in os.environ.items()
        if name not in _CARGO_RUN_VARIABLES and not name.startswith("CARGO_PKG_")
    }


def build_library():
    """Runs cargo on the workspace and returns the path of the cdylib it built (read from
    cargo's JSON messages, so that any target directory cargo was configured with is found)."""
    manifest = os.path.join(WORKSPACE, "Cargo.toml")
    if not os.path.isfile(manifest):
        raise SystemExit(
            "gitlab_runner_api: %s is missing: build the package from a checkout of the "
            "repository (pip install ./bindings/python), not from an sdist" % manifest
        )
    cargo = os.environ.get("CARGO") or "cargo"
    command = [
        cargo, "build", "--release", "--lib", "-p", "gitlab_runner_api",
        "--manifest-path", manifest, "--message-format=json-render-diagnostics",
    ]
    try:
        # Diagnostics go to stderr as cargo renders them; stdout is its JSON messages.
        done = subprocess.run(command, cwd=WORKSPACE, env=cargo_environment(), stdout=subprocess.PIPE, check=False)
    except FileNotFoundError:
        raise SystemExit(
            "gitlab_runner_api: building the package builds the C library and needs Rust's cargo "
            "(https://rustup.rs), not found as %r (set CARGO to its path)" % cargo
        )
    if done.returncode != 0:
        raise SystemExit("gitlab_runner_api: %s failed (exit status %d)" % (" ".join(command), done.returncode))
    for line in done.stdout.decode("utf-8", "replace").splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if message.get("reason") != "compiler-artifact" or "cdylib" not in message["target"]["crate_types"]:
            continue
        for filename in message.get("filenames", []):
            if os.path.basename(filename) == LIBRARY:
                return filename
    raise SystemExit("gitlab_runner_api: cargo built no %s (is this a Linux machine?)" % LIBRARY)


class build_py_with_library(build_py):
    """The package's modules plus the library cargo built, in the build directory."""

    def run(self):
        super().run()
        if self.editable_mode:  # an editable install loads the checkout's target/ build
            return
        source = build_library()
        destination = os.path.join(self.build_lib, "gitlab_runner_api", LIBRARY)
        self.mkpath(os.path.dirname(destination))
        # Always copied (not by modification time): a rebuilt library may be older than a copy.
        shutil.copyfile(source, destination)
        os.chmod(destination, 0o755)

    def get_outputs(self, include_bytecode=True):
        outputs = super().get_outputs(include_bytecode)
        if self.editable_mode:
            return outputs
        return outputs + [os.path.join(self.build_lib, "gitlab_runner_api", LIBRARY)]


class DistributionWithLibrary(Distribution):
    """Holds native code: installed into platlib, and the wheel is not "pure"."""

    def has_ext_modules(self):
        return True


class bdist_wheel_for_platform(bdist_wheel):
    """A wheel for any Python 3 (ctypes only: no interpreter ABI) on this platform."""

    def get_tag(self):
        _, _, platform = super().get_tag()
        return "py3", "none", platform


# pip builds in this directory: setuptools' build/ and *.egg-info/ go to a directory of this
# process instead, so that no build writes into the sources and no earlier build's leftovers
# (a module since removed) end up in a wheel.
_SCRATCH = tempfile.mkdtemp(prefix="gitlab_runner_api-build-")
atexit.register(shutil.rmtree, _SCRATCH, True)

setup(
    options={"build": {"build_base": os.path.join(_SCRATCH, "build")}, "egg_info": {"egg_base": _SCRATCH}},
    distclass=DistributionWithLibrary,
    cmdclass={"build_py": build_py_with_library, "bdist_wheel": bdist_wheel_for_platform},
)
