// The JS function accumulateImageStats over image_stats.h, as a PromiseWorker (off the
// event loop).
#pragma once
#include <napi.h>

namespace alexnet {

// accumulateImageStats(pixels: Uint8Array (n,H,W,3), n, height, width, pixelSum: Float64Array
//   (H,W,3), rgbSum: Float64Array (3), rgbOuterSum: Float64Array (9)) -> Promise<undefined>:
//   adds into the three arrays on a native thread (do not touch them until it settles)
Napi::Value AccumulateImageStats(const Napi::CallbackInfo& info);

}  // namespace alexnet
