// The JS functions augmentTrain, augmentCenter and augmentTenCrop over augment.h: each
// runs as a PromiseWorker (off the event loop) and resolves with a Float32Array over the
// native output buffer (allocated off the loop, never copied).
#pragma once
#include <napi.h>

namespace alexnet {

// augmentTrain(pixels: Uint8Array, n, size, crop, {mean?, pcaVectors?, pcaValues?,
//   pcaSigma, seed: bigint, counter: bigint, firstIndex, threads?}) -> Promise<Float32Array>
Napi::Value AugmentTrain(const Napi::CallbackInfo& info);
// augmentCenter(pixels, n, size, crop, {mean?, threads?}) -> Promise<Float32Array (n,3,crop,crop)>
Napi::Value AugmentCenter(const Napi::CallbackInfo& info);
// augmentTenCrop(pixels, n, size, crop, {mean?, threads?}) -> Promise<Float32Array (n*10,3,crop,crop)>
Napi::Value AugmentTenCrop(const Napi::CallbackInfo& info);

}  // namespace alexnet
