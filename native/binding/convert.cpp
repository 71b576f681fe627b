#include "convert.h"

#include <cstdio>
#include <cstdlib>
#include <stdexcept>

#include "args.h"
#include "errors.h"

namespace alexnet {
namespace {

// The shortest decimal that reads back as the same float, so 1e-4f shows as 0.0001.
double short_decimal(float f) {
  char buf[32];
  for (int digits = 6; digits <= 9; digits++) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, (double)f);
    if ((float)std::strtod(buf, nullptr) == f) break;
  }
  return std::strtod(buf, nullptr);
}

}  // namespace

Napi::Object config_to_js(Napi::Env env, const NetConfig& cfg) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", cfg.name);
  Napi::Object input = Napi::Object::New(env);
  input.Set("channels", cfg.channels);
  input.Set("height", cfg.height);
  input.Set("width", cfg.width);
  o.Set("input", input);
  o.Set("classes", cfg.classes);
  o.Set("weightStd", short_decimal(cfg.weight_std));
  Napi::Array layers = Napi::Array::New(env, cfg.layers.size());
  for (size_t i = 0; i < cfg.layers.size(); i++) {
    const LayerSpec& l = cfg.layers[i];
    Napi::Object j = Napi::Object::New(env);
    j.Set("type", layer_type_name(l.type));
    switch (l.type) {
      case LayerType::Conv:
        j.Set("name", l.name);
        j.Set("out", l.out);
        j.Set("kernel", l.kernel);
        j.Set("stride", l.stride);
        j.Set("pad", l.pad);
        j.Set("groups", l.groups);
        j.Set("biasInit", short_decimal(l.bias_init));
        break;
      case LayerType::Linear:
        j.Set("name", l.name);
        j.Set("out", l.out);
        j.Set("biasInit", short_decimal(l.bias_init));
        break;
      case LayerType::Lrn:
        j.Set("size", l.size);
        j.Set("alpha", short_decimal(l.alpha));
        j.Set("beta", short_decimal(l.beta));
        j.Set("k", short_decimal(l.k));
        j.Set("groups", l.groups);
        break;
      case LayerType::MaxPool:
        j.Set("kernel", l.kernel);
        j.Set("stride", l.stride);
        break;
      case LayerType::Dropout: j.Set("p", short_decimal(l.p)); break;
      case LayerType::Relu: break;
    }
    layers.Set((uint32_t)i, j);
  }
  o.Set("layers", layers);
  return o;
}

NetConfig config_from_js(const Napi::Object& o) {
  Napi::Env env = o.Env();
  NetConfig cfg;
  if (o.Has("name") && o.Get("name").IsString()) cfg.name = o.Get("name").As<Napi::String>();
  if (!o.Get("input").IsObject()) throw type_error(env, "config.input must be an object");
  Napi::Object input = o.Get("input").As<Napi::Object>();
  cfg.channels = (int)number_field(input, "channels", 3, "config.input");
  cfg.height = (int)number_field(input, "height", 0, "config.input");
  cfg.width = (int)number_field(input, "width", 0, "config.input");
  cfg.classes = (int)number_field(o, "classes", 0, "config");
  cfg.weight_std = (float)number_field(o, "weightStd", 0.01, "config");
  if (!o.Get("layers").IsArray()) throw type_error(env, "config.layers must be an array");
  Napi::Array layers = o.Get("layers").As<Napi::Array>();
  for (uint32_t i = 0; i < layers.Length(); i++) {
    const std::string where = "config.layers[" + std::to_string(i) + "]";
    if (!layers.Get(i).IsObject()) throw type_error(env, where + " must be an object");
    Napi::Object j = layers.Get(i).As<Napi::Object>();
    if (!j.Get("type").IsString()) throw type_error(env, where + ".type must be a string");
    LayerSpec l;
    try {
      l.type = parse_layer_type(j.Get("type").As<Napi::String>());
    } catch (const std::invalid_argument& e) {
      throw type_error(env, where + ": " + e.what());
    }
    if (j.Has("name") && j.Get("name").IsString()) l.name = j.Get("name").As<Napi::String>();
    l.out = (int)number_field(j, "out", l.out, where);
    l.kernel = (int)number_field(j, "kernel", l.kernel, where);
    l.stride = (int)number_field(j, "stride", l.stride, where);
    l.pad = (int)number_field(j, "pad", l.pad, where);
    l.groups = (int)number_field(j, "groups", l.groups, where);
    l.bias_init = (float)number_field(j, "biasInit", l.bias_init, where);
    l.size = (int)number_field(j, "size", l.size, where);
    l.alpha = (float)number_field(j, "alpha", l.alpha, where);
    l.beta = (float)number_field(j, "beta", l.beta, where);
    l.k = (float)number_field(j, "k", l.k, where);
    l.p = (float)number_field(j, "p", l.p, where);
    cfg.layers.push_back(l);
  }
  return cfg;
}

}  // namespace alexnet
