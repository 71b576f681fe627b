// accumulateImageStats: the arguments checked for memory safety (types, the arrays'
// lengths against the sizes; activities/image-stats.ts gives the friendly messages first),
// then image_stats_accumulate on the libuv pool, adding into the caller's arrays.
#include "image_stats_wrap.h"

#include <omp.h>

#include "args.h"
#include "errors.h"
#include "image_stats.h"
#include "layers.h"
#include "promise_worker.h"

namespace alexnet {
namespace {

struct ImageStatsArgs {
  const uint8_t* pixels;  // (n, height, width, 3)
  int n, height, width;
  double *pixel_sum, *rgb_sum, *rgb_outer_sum;  // (height, width, 3), (3), (9): added into
};

class ImageStatsWorker : public PromiseWorker {
 public:
  ImageStatsWorker(Napi::Env env, const ImageStatsArgs& args) : PromiseWorker(env, "alexnet:imageStats"), a_(args) {}

 protected:
  void Run() override {
    omp_set_num_threads(default_compute_threads());  // per calling thread: this libuv thread
    image_stats_accumulate(a_.pixels, a_.n, a_.height, a_.width, a_.pixel_sum, a_.rgb_sum, a_.rgb_outer_sum);
  }

 private:
  ImageStatsArgs a_;
};

}  // namespace

Napi::Value AccumulateImageStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Uint8Array pixels = typed_array<uint8_t>(info[0], "pixels");
  const int n = int_arg(info, 1, "n"), height = int_arg(info, 2, "height"), width = int_arg(info, 3, "width");
  if (n < 0 || height < 1 || width < 1) throw range_error(env, "n must be >= 0, height and width >= 1");
  typed_array<uint8_t>(pixels, "pixels", (size_t)n * height * width * 3, "n*height*width*3 = ");
  Napi::Float64Array pixel_sum = typed_array<double>(info[4], "pixelSum", (size_t)height * width * 3),
                     rgb_sum = typed_array<double>(info[5], "rgbSum", 3),
                     rgb_outer_sum = typed_array<double>(info[6], "rgbOuterSum", 9);
  auto* w = new ImageStatsWorker(env, {pixels.Data(), n, height, width, pixel_sum.Data(), rgb_sum.Data(),
                                       rgb_outer_sum.Data()});
  for (Napi::Value v : {Napi::Value(pixels), Napi::Value(pixel_sum), Napi::Value(rgb_sum), Napi::Value(rgb_outer_sum)})
    w->Keep(v);
  return w->Start();
}

}  // namespace alexnet
