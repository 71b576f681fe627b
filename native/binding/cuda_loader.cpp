// dlopen of libalexnet_cuda.so; see cuda_loader.h.
#include "cuda_loader.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>

#include "api.h"
#include "error.h"

#ifndef ALEXNET_CUDA_BUILT
#define ALEXNET_CUDA_BUILT 0
#endif

namespace alexnet {
namespace {

const char kNotBuilt[] =
    "CUDA requested but this build of the native library has no CUDA backend (nvcc was not "
    "found at build time): run scripts/install-cuda.sh and `npm run build:native`, or unset "
    "ALEXNET_DEVICE";

struct Library {
  void* handle = nullptr;
  std::string error;
  alexnet_cuda_create_fn create = nullptr;
  alexnet_cuda_device_count_fn device_count = nullptr;
};

// Loaded once, never unloaded (networks it created run its code).
Library& library() {
  static Library lib;
  static std::once_flag once;
  std::call_once(once, [] {
    if (!ALEXNET_CUDA_BUILT && !std::getenv("ALEXNET_CUDA_LIBRARY")) {
      lib.error = kNotBuilt;
      return;
    }
    const std::string path = cuda_library_path();
    lib.handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib.handle) {
      const char* e = dlerror();
      lib.error = "CUDA requested but the CUDA backend " + path + " failed to load: " +
                  (e ? e : "unknown error") +
                  " (are the CUDA runtime and cuBLAS libraries installed?); unset ALEXNET_DEVICE to use the CPU";
      return;
    }
    lib.create = (alexnet_cuda_create_fn)dlsym(lib.handle, ALEXNET_CUDA_CREATE_SYMBOL);
    lib.device_count = (alexnet_cuda_device_count_fn)dlsym(lib.handle, ALEXNET_CUDA_DEVICE_COUNT_SYMBOL);
    if (!lib.create || !lib.device_count) lib.error = path + " lacks the alexnet_cuda_* entry points: rebuild it";
  });
  return lib;
}

}  // namespace

bool cuda_built() { return ALEXNET_CUDA_BUILT != 0; }

std::string cuda_library_path() {
  if (const char* env = std::getenv("ALEXNET_CUDA_LIBRARY")) return env;
  // Next to this addon.
  Dl_info info;
  std::string dir = ".";
  if (dladdr((void*)&cuda_library_path, &info) && info.dli_fname) {
    dir = info.dli_fname;
    const size_t slash = dir.rfind('/');
    dir = slash == std::string::npos ? "." : dir.substr(0, slash);
  }
  return dir + "/libalexnet_cuda.so";
}

std::unique_ptr<NetworkBackend> create_cuda_network(const NetConfig& cfg, uint64_t seed,
                                                    const DeviceOptions& options) {
  Library& lib = library();
  if (!lib.error.empty()) throw Error(ErrorCode::CudaUnavailable, lib.error);
  char err[1024] = {0};
  NetworkBackend* net = nullptr;
  const int rc = lib.create(&cfg, seed, &options, &net, err, sizeof err);
  if (rc != 0) throw Error(error_code_from_int(rc), err);
  if (!net) throw Error(ErrorCode::Internal, "the CUDA backend reported success but returned no network");
  return std::unique_ptr<NetworkBackend>(net);
}

CudaDevices cuda_devices() {
  CudaDevices d;
  Library& lib = library();
  if (!lib.error.empty()) {
    d.info = lib.error;
    return d;
  }
  d.loaded = true;
  char info[2048] = {0};
  const int n = lib.device_count(info, sizeof info);
  d.count = n > 0 ? n : 0;
  d.info = n < 0 ? std::string("no CUDA device is available: ") + info : n == 0 ? "no CUDA device found" : info;
  return d;
}

}  // namespace alexnet
