// NetConfig <-> JS object. The field names are those of the JSON config documented in
// the README (camelCase: biasInit, weightStd); TypeScript validates before calling in.
#pragma once
#include <napi.h>

#include "config.h"

namespace alexnet {
Napi::Object config_to_js(Napi::Env env, const NetConfig& cfg);
NetConfig config_from_js(const Napi::Object& obj);
}  // namespace alexnet
