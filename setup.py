"""Build script: maps kernels/ and csrc/ into the package and builds the optional extension.

The C++/CUDA extension (``gan_fast._C``) is optional. It is built here when a
C++ compiler is present and ``GAN_FAST_BUILD_EXT`` is not ``0``; its CUDA
sources are compiled only when a CUDA toolkit and a CUDA build of torch are both
present (``GAN_FAST_BUILD_CUDA=0`` skips them). When it is not built, gan_fast
builds it on first use with ``torch.utils.cpp_extension.load`` (see
``gan_fast/extension.py``), and if that fails too, falls back to the
pure-PyTorch reference with one warning. A failed build never fails the install.

The sources ship inside the wheel as ``gan_fast/csrc`` (package data), so the
JIT build works from a wheel too. The library embeds a hash of its sources
(``GAN_FAST_SOURCE_HASH``); gan_fast ignores a prebuilt library whose hash
does not match the sources next to it (a stale in-place build in an edited
checkout) and builds a fresh one instead. Next to the library the build writes
``<library>.sha256``, its digest, which gan_fast checks before loading it.
"""

import glob
import importlib.util
import os
import sys

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))
CSRC_DATA = ["*.cpp", "*.cu", "*.h", "*.cuh", "*.sh"]

packages = find_packages(include=["gan_fast", "gan_fast.*"])
packages += ["gan_fast.kernels", "gan_fast.csrc"]
package_dir = {"gan_fast.kernels": "kernels", "gan_fast.csrc": "csrc"}
package_data = {"gan_fast.csrc": CSRC_DATA}


def _loader():
    """gan_fast/extension.py, loaded standalone (it imports nothing from gan_fast)."""
    spec = importlib.util.spec_from_file_location("_gan_fast_extension", os.path.join(ROOT, "gan_fast", "extension.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _source_hash():
    """The sources' hash, as gan_fast/extension.py computes it."""
    module = _loader()
    return module.source_hash(module.source_files(os.path.join(ROOT, "csrc")))


def _extension_build():
    """Returns (ext_modules, cmdclass) for the optional extension, or ([], {})."""
    if os.environ.get("GAN_FAST_BUILD_EXT", "1") == "0":
        return [], {}
    cpp_sources = sorted(glob.glob(os.path.join("csrc", "*.cpp")))
    if not cpp_sources:
        return [], {}
    try:
        import torch
        from torch.utils import cpp_extension
    except Exception as exc:  # no torch in the build environment: use the JIT build later
        print(f"gan_fast: not building the extension ({exc}); it will be built on first use", file=sys.stderr)
        return [], {}

    cu_sources = sorted(glob.glob(os.path.join("csrc", "*.cu")))
    with_cuda = bool(cu_sources) and torch.version.cuda is not None and cpp_extension.CUDA_HOME is not None
    with_cuda = with_cuda and os.environ.get("GAN_FAST_BUILD_CUDA", "1") != "0"
    defines = [f"-DGAN_FAST_SOURCE_HASH={_source_hash()}"] + (["-DGAN_FAST_WITH_CUDA"] if with_cuda else [])
    openmp = [] if sys.platform in ("darwin", "win32") else ["-fopenmp"]
    # As gan_fast/extension.py's CXX_FLAGS (-fno-trapping-math: the selects vectorise).
    extra = {"cxx": ["-O3", "-fno-trapping-math", "-fno-math-errno"] + openmp + defines}
    if with_cuda:
        extra["nvcc"] = ["-O3", "--use_fast_math"] + defines
        ext_cls = cpp_extension.CUDAExtension
        sources = cpp_sources + cu_sources
    else:
        ext_cls = cpp_extension.CppExtension
        sources = cpp_sources
    ext = ext_cls(
        name="gan_fast._C",
        sources=sources,
        include_dirs=[os.path.join(ROOT, "csrc")],
        extra_compile_args=extra,
        extra_link_args=openmp,
        py_limited_api=False,
    )

    class OptionalBuildExt(cpp_extension.BuildExtension):
        """A failed extension build warns and installs the pure-Python package.

        Next to each built library it writes ``<library>.sha256`` (its digest), which gan_fast checks before
        loading it (a library cut short by an interrupted copy would crash the process). An in-place copy
        replaces the library atomically, so a running process that has the old one mapped keeps it whole.
        """

        def run(self):
            try:
                super().run()
            except Exception as exc:
                print(f"gan_fast: WARNING: the C++ extension failed to build ({exc}); "
                      "gan_fast will try a JIT build on first use, else use the reference ops", file=sys.stderr)
                return
            loader = _loader()
            for ext in self.extensions:
                filename = self.get_ext_filename(self.get_ext_fullname(ext.name))
                for path in {os.path.join(self.build_lib, filename), self.get_ext_fullpath(ext.name)}:
                    if os.path.isfile(path):
                        loader.write_digest_file(path)

        def get_outputs(self):
            outputs = super().get_outputs()
            return outputs + [path + ".sha256" for path in outputs if path.endswith((".so", ".pyd", ".dylib"))]

        def copy_file(self, infile, outfile, *args, **kwargs):
            if os.path.isdir(outfile):
                outfile = os.path.join(outfile, os.path.basename(infile))
            tmp = f"{outfile}.tmp{os.getpid()}"
            _, copied = super().copy_file(infile, tmp, *args, **kwargs)
            os.replace(tmp, outfile)
            return outfile, copied

        def build_extension(self, ext):
            try:
                super().build_extension(ext)
            except Exception as exc:
                print(f"gan_fast: WARNING: could not build {ext.name} ({exc}); gan_fast will try a JIT build on "
                      "first use, else use the reference ops", file=sys.stderr)

    return [ext], {"build_ext": OptionalBuildExt.with_options(no_python_abi_suffix=False)}


ext_modules, cmdclass = _extension_build()

setup(
    packages=packages,
    package_dir=package_dir,
    package_data=package_data,
    ext_modules=ext_modules,
    cmdclass=cmdclass,
)
