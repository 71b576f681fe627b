// The JS function measurePeakFlops over peak.h, as a PromiseWorker (off the event loop).
#pragma once
#include <napi.h>

namespace alexnet {

// measurePeakFlops(threads: number (0: all cores)) -> Promise<{fmaGflops, sgemmGflops}>
Napi::Value MeasurePeakFlops(const Napi::CallbackInfo& info);

}  // namespace alexnet
