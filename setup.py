"""Build script: maps kernels/ and csrc/ into the package and builds the optional extension ``gan_fast._C``.

The extension is built here when torch is importable (``pip install --no-build-isolation``: under pip's
default build isolation setup.py sees no torch, and torch is deliberately not a build requirement, which
would build against another torch than the installed one), a C++ compiler is present and
``GAN_FAST_BUILD_EXT`` is not ``0``. Its CUDA kernels are compiled when torch is a CUDA build and nvcc is
found (``GAN_FAST_BUILD_CUDA=0`` skips them); with no GPU visible (a Docker build, a login node) and
``TORCH_CUDA_ARCH_LIST`` unset they are compiled for ``8.0;9.0+PTX``. If the CUDA build fails, the CPU
kernels are built alone. A failed build never fails the install: gan_fast then builds the extension on first
use (``gan_fast/extension/``), or falls back to the pure-PyTorch reference with one warning.

The sources ship inside the wheel as ``gan_fast/csrc`` (so the first-use build works from a wheel too). The
library embeds a hash of its sources (a stale in-place build in an edited checkout is never loaded), and
next to it the build writes ``<library>.sha256``: its digest, checked before loading, and why it has no CUDA
kernels where it has none.

``setup(...)`` runs only when this file runs as a script (pip and setuptools run it so), so that its helpers
can be imported by tests.
"""

import glob
import importlib.util
import os
import sys
import warnings

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))


def _standalone(name):
    """gan_fast/extension/<name>.py loaded on its own (those files import only the standard library)."""
    spec = importlib.util.spec_from_file_location(f"_gan_fast_{name}", os.path.join(ROOT, "gan_fast", "extension",
                                                                                     f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cuda_build_plan(torch, cuda_home, environ=os.environ):
    """(compile the CUDA kernels?, why not, the TORCH_CUDA_ARCH_LIST to set or None)."""
    sources = _standalone("sources")
    has_cu = bool(glob.glob(os.path.join(ROOT, "csrc", "*.cu")))
    with_cuda, why = sources.cuda_plan(torch, cuda_home, has_cu, not sources.switched_off(environ.get("GAN_FAST_BUILD_CUDA")))
    return with_cuda, why, sources.cuda_arch_default(torch, environ) if with_cuda else None


def _one_line(exc):
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()] or [repr(exc)]
    return lines[-1][:300]


def extension_build(environ=os.environ):
    """Returns (ext_modules, cmdclass) for the optional extension, or ([], {})."""
    sources = _standalone("sources")
    if sources.switched_off(environ.get("GAN_FAST_BUILD_EXT")):
        return [], {}
    try:
        import torch
        from torch.utils import cpp_extension
    except Exception as exc:
        why = ("torch is not importable here (pip's build isolation hides it: `pip install --no-build-isolation .` "
               "builds it)" if isinstance(exc, ImportError) else f"importing torch failed ({_one_line(exc)})")
        print(f"gan_fast: the C++ extension is not built at install: {why}; gan_fast builds it on first use",
              file=sys.stderr)
        return [], {}
    csrc = os.path.join(ROOT, "csrc")
    with_cuda, cuda_reason, archs = cuda_build_plan(torch, cpp_extension.CUDA_HOME, environ)
    if archs:
        os.environ["TORCH_CUDA_ARCH_LIST"] = archs
        print(sources.cuda_arch_notice(archs), file=sys.stderr)
    digest = sources.source_hash(sources.source_files(csrc))

    def make(cuda):
        defines = [f"-DGAN_FAST_SOURCE_HASH={digest}"] + (["-DGAN_FAST_WITH_CUDA"] if cuda else [])
        cpp = sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(csrc, "*.cpp")))
        cu = sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(csrc, "*.cu"))) if cuda else []
        extra = {"cxx": sources.CXX_FLAGS + sources.openmp_flags() + defines}
        if cuda:
            extra["nvcc"] = sources.NVCC_FLAGS + defines
        return (cpp_extension.CUDAExtension if cuda else cpp_extension.CppExtension)(
            name="gan_fast._C", sources=cpp + cu, include_dirs=[csrc], extra_compile_args=extra,
            extra_link_args=sources.openmp_flags(), py_limited_api=False)

    class OptionalBuildExt(cpp_extension.BuildExtension):
        """A failed CUDA build is retried with the CPU kernels alone; a failed build says so in one line and
        installs the pure-Python package. Next to each built library it writes ``<library>.sha256``, and an
        in-place copy replaces the library atomically (a running process keeps the old one whole)."""

        def run(self):
            reason, inplace = cuda_reason, self.inplace  # setuptools' run() clears inplace while it builds
            try:
                super().run()
            except Exception as exc:
                if not with_cuda:
                    return self._failed(exc)
                reason = f"the CUDA build failed: {_one_line(exc)}"
                print(f"gan_fast: {reason}; building the CPU kernels only", file=sys.stderr)
                cpu = make(False)
                for name, value in vars(self.extensions[0]).items():  # setuptools' state (_full_name, _needs_stub..)
                    if name.startswith("_"):
                        setattr(cpu, name, value)
                self.extensions, self.compiler, self.inplace = [cpu], None, inplace
                try:
                    super().run()
                except Exception as exc2:
                    return self._failed(exc2)
            integrity = _standalone("integrity")
            for ext in self.extensions:
                filename = self.get_ext_filename(self.get_ext_fullname(ext.name))
                for path in {os.path.join(self.build_lib, filename), self.get_ext_fullpath(ext.name)}:
                    if os.path.isfile(path):
                        integrity.write_digest_file(path, **({"cuda_reason": reason} if reason else {}))

        def build_extensions(self):
            names = self.compiler.object_filenames

            def object_filenames(source_filenames, *args, **kwargs):  # x.cpp and x.cu: two objects, not one x.o
                objects = names(source_filenames, *args, **kwargs)
                return [obj[:-2] + ".cu.o" if src.endswith(".cu") and obj.endswith(".o") else obj
                        for src, obj in zip(source_filenames, objects)]

            self.compiler.object_filenames = object_filenames
            super().build_extensions()

        def _failed(self, exc):
            self.extensions = []  # nothing to copy in place or to list as an output
            print(f"gan_fast: WARNING: the C++ extension failed to build ({_one_line(exc)}); gan_fast will build "
                  "it on first use, else use the reference ops", file=sys.stderr)

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

    return [make(with_cuda)], {"build_ext": OptionalBuildExt.with_options(no_python_abi_suffix=False)}


def main():
    # setuptools' box for an editable install through its import finder (the kernels/ and csrc/ mappings need
    # one) warns of folders named like the package in the working directory: information, not a problem here.
    warnings.filterwarnings("ignore", message="Editable installation")
    ext_modules, cmdclass = extension_build()
    setup(
        packages=find_packages(include=["gan_fast", "gan_fast.*"]) + ["gan_fast.kernels", "gan_fast.csrc"],
        package_dir={"gan_fast.kernels": "kernels", "gan_fast.csrc": "csrc"},
        package_data={"gan_fast.csrc": ["*.cpp", "*.cu", "*.h", "*.cuh", "*.sh"]},
        ext_modules=ext_modules,
        cmdclass=cmdclass,
    )


if __name__ == "__main__":
    main()
