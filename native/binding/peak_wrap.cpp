// measurePeakFlops: measure_peak_flops on the libuv pool (about a quarter of a second).
#include "peak_wrap.h"

#include "args.h"
#include "peak.h"
#include "promise_worker.h"

namespace alexnet {
namespace {

class PeakWorker : public PromiseWorker {
 public:
  PeakWorker(Napi::Env env, int threads) : PromiseWorker(env, "alexnet:peakFlops"), threads_(threads) {}

 protected:
  void Run() override { peak_ = measure_peak_flops(threads_); }
  Napi::Value Result(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    o.Set("fmaGflops", peak_.fma_gflops);
    o.Set("sgemmGflops", peak_.sgemm_gflops);
    return o;
  }

 private:
  int threads_;
  PeakFlops peak_{};
};

}  // namespace

Napi::Value MeasurePeakFlops(const Napi::CallbackInfo& info) {
  return (new PeakWorker(info.Env(), int_arg(info, 0, "threads")))->Start();
}

}  // namespace alexnet
