// Registration of the gan_fast operators with the PyTorch dispatcher.
//
// Every kernel is an opaque torch.ops.gan_fast.* op: its schema, its fake and its
// autograd live in Python (gan_fast/backends/*.py: torch.library.define + register_fake
// at import, torch.autograd.Function whose backward calls further ops), so
// torch.compile traces through the ops; this file registers the implementations.
//
// The library is loaded either as the Python module gan_fast._C (setup.py) or
// with torch.ops.load_library after a JIT build (gan_fast/extension.py); the
// registration runs when the shared object is loaded, either way.
#include <Python.h>
#include <torch/library.h>

#include <string>

#include "bias_act.h"
#include "upfirdn2d.h"

#define GAN_FAST_STR2(x) #x
#define GAN_FAST_STR(x) GAN_FAST_STR2(x)
#ifndef GAN_FAST_SOURCE_HASH
#define GAN_FAST_SOURCE_HASH unknown
#endif

// The build's identity, read by extension.py: the hash of the sources it was
// built from (so a stale prebuilt library is never used) and whether it
// carries CUDA kernels. extension.py also searches the file for this string
// before loading it, so it is an exported array (kept whole in .rodata, never
// folded into instructions).
#if defined(_MSC_VER)
#define GAN_FAST_EXPORT __declspec(dllexport)
#else
#define GAN_FAST_EXPORT __attribute__((visibility("default"), used))
#endif
extern "C" GAN_FAST_EXPORT const char gan_fast_build_info[] =
    "gan_fast_source_hash=" GAN_FAST_STR(GAN_FAST_SOURCE_HASH) ";cuda="
#ifdef GAN_FAST_WITH_CUDA
    "1";
#else
    "0";
#endif

namespace gan_fast {
namespace {

std::string build_info() {
  return std::string(gan_fast_build_info);
}

}  // namespace
}  // namespace gan_fast

// The ops' schemas (and fakes) are defined in Python when gan_fast is imported (gan_fast/backends/bias_act.py,
// upfirdn2d.py); this library registers only their implementations, and build_info.
TORCH_LIBRARY_FRAGMENT(gan_fast, m) {
  m.def("build_info() -> str", &gan_fast::build_info);
}

TORCH_LIBRARY_IMPL(gan_fast, CPU, m) {
  m.impl("bias_act_fwd", &gan_fast::bias_act_fwd_cpu);
  m.impl("bias_act_grad", &gan_fast::bias_act_grad_cpu);
  m.impl("bias_act_grad2", &gan_fast::bias_act_grad2_cpu);
  m.impl("bias_act_grad_db", &gan_fast::bias_act_grad_db_cpu);
  m.impl("bias_act_grad2_db", &gan_fast::bias_act_grad2_db_cpu);
  m.impl("upfirdn2d_fwd", &gan_fast::upfirdn2d_fwd_cpu);
}

#ifdef GAN_FAST_WITH_CUDA
TORCH_LIBRARY_IMPL(gan_fast, CUDA, m) {
  m.impl("bias_act_fwd", &gan_fast::bias_act_fwd_cuda);
  m.impl("bias_act_grad", &gan_fast::bias_act_grad_cuda);
  m.impl("bias_act_grad2", &gan_fast::bias_act_grad2_cuda);
  m.impl("bias_act_grad_db", &gan_fast::bias_act_grad_db_cuda);
  m.impl("bias_act_grad2_db", &gan_fast::bias_act_grad2_db_cuda);
  m.impl("upfirdn2d_fwd", &gan_fast::upfirdn2d_fwd_cuda);
}
#endif

// `import gan_fast._C` (the prebuilt extension from setup.py) needs a module
// init function; the module itself is empty, the ops are in torch.ops.gan_fast.
#ifdef TORCH_EXTENSION_NAME
#define GAN_FAST_CAT2(a, b) a##b
#define GAN_FAST_CAT(a, b) GAN_FAST_CAT2(a, b)
PyMODINIT_FUNC GAN_FAST_CAT(PyInit_, TORCH_EXTENSION_NAME)(void) {
  static PyModuleDef def = {PyModuleDef_HEAD_INIT, GAN_FAST_STR(TORCH_EXTENSION_NAME),
                            "gan_fast compiled kernels (registered as torch.ops.gan_fast.*)", -1, nullptr};
  return PyModule_Create(&def);
}
#endif
