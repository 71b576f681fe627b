// Layer configs: validation, shape inference and the built-in models.
#include "config.h"

#include <stdexcept>

#include "layers.h"

namespace alexnet {

const char* layer_type_name(LayerType t) {
  switch (t) {
    case LayerType::Conv: return "conv";
    case LayerType::Relu: return "relu";
    case LayerType::Lrn: return "lrn";
    case LayerType::MaxPool: return "maxpool";
    case LayerType::Linear: return "linear";
    case LayerType::Dropout: return "dropout";
  }
  return "?";
}

LayerType parse_layer_type(const std::string& name) {
  for (LayerType t : {LayerType::Conv, LayerType::Relu, LayerType::Lrn, LayerType::MaxPool,
                      LayerType::Linear, LayerType::Dropout})
    if (name == layer_type_name(t)) return t;
  throw std::invalid_argument("unknown layer type '" + name +
                              "': expected one of conv, relu, lrn, maxpool, linear, dropout");
}

std::vector<Shape> infer_shapes(const NetConfig& cfg) {
  auto fail = [&](size_t i, const std::string& why) {
    const LayerSpec& l = cfg.layers[i];
    throw std::invalid_argument("layer " + std::to_string(i) + " (" + layer_type_name(l.type) +
                                (l.name.empty() ? "" : " " + l.name) + "): " + why);
  };
  if (cfg.channels < 1 || cfg.height < 1 || cfg.width < 1)
    throw std::invalid_argument("input: channels, height and width must be positive");
  if (cfg.classes < 1) throw std::invalid_argument("classes must be at least 1");
  if (cfg.layers.empty() || cfg.layers.back().type != LayerType::Linear)
    throw std::invalid_argument("the last layer must be a linear layer producing the class scores");
  std::vector<Shape> shapes;
  Shape s{cfg.channels, cfg.height, cfg.width};
  bool flat = false;
  for (size_t i = 0; i < cfg.layers.size(); i++) {
    const LayerSpec& l = cfg.layers[i];
    switch (l.type) {
      case LayerType::Conv:
        if (flat) fail(i, "a conv layer cannot follow a linear layer");
        if (l.name.empty()) fail(i, "conv layers need a name (the parameter prefix)");
        if (l.out < 1 || l.kernel < 1 || l.stride < 1 || l.pad < 0 || l.groups < 1)
          fail(i, "out, kernel, stride and groups must be positive and pad non-negative");
        if (s.c % l.groups || l.out % l.groups)
          fail(i, "groups=" + std::to_string(l.groups) + " must divide input channels (" +
                      std::to_string(s.c) + ") and out (" + std::to_string(l.out) + ")");
        if (s.h + 2 * l.pad < l.kernel || s.w + 2 * l.pad < l.kernel)
          fail(i, "kernel " + std::to_string(l.kernel) + " is larger than the padded input " +
                      std::to_string(s.h) + "x" + std::to_string(s.w));
        s = Shape{l.out, conv_out_size(s.h, l.kernel, l.stride, l.pad),
                  conv_out_size(s.w, l.kernel, l.stride, l.pad)};
        break;
      case LayerType::MaxPool:
        if (flat) fail(i, "maxpool cannot follow a linear layer");
        if (l.kernel < 1 || l.stride < 1) fail(i, "kernel and stride must be positive");
        if (s.h < l.kernel || s.w < l.kernel)
          fail(i, "window " + std::to_string(l.kernel) + " is larger than the input " +
                      std::to_string(s.h) + "x" + std::to_string(s.w));
        s = Shape{s.c, (s.h - l.kernel) / l.stride + 1, (s.w - l.kernel) / l.stride + 1};
        break;
      case LayerType::Lrn:
        if (flat) fail(i, "lrn cannot follow a linear layer");
        if (l.size < 1 || l.groups < 1 || s.c % l.groups)
          fail(i, "size must be positive and groups must divide the channels (" +
                      std::to_string(s.c) + ")");
        if (!(l.k > 0) || !(l.alpha >= 0) || !(l.beta >= 0))
          fail(i, "k must be positive, alpha and beta non-negative");
        break;
      case LayerType::Linear:
        if (l.name.empty()) fail(i, "linear layers need a name (the parameter prefix)");
        if (l.out < 1) fail(i, "out must be positive");
        flat = true;
        s = Shape{l.out, 1, 1};
        break;
      case LayerType::Dropout:
        if (!(l.p >= 0.0f && l.p < 1.0f)) fail(i, "p must be in [0, 1)");
        break;
      case LayerType::Relu: break;
    }
    shapes.push_back(s);
  }
  if (cfg.layers.back().out != cfg.classes)
    fail(cfg.layers.size() - 1, "the last linear layer has out=" +
                                    std::to_string(cfg.layers.back().out) + " but classes=" +
                                    std::to_string(cfg.classes));
  for (size_t i = 0; i < cfg.layers.size(); i++)
    for (size_t j = 0; j < i; j++)
      if (!cfg.layers[i].name.empty() && cfg.layers[i].name == cfg.layers[j].name)
        fail(i, "duplicate layer name '" + cfg.layers[i].name + "'");
  return shapes;
}

namespace {

LayerSpec conv(const char* name, int out, int kernel, int stride, int pad, int groups,
               float bias_init) {
  LayerSpec l;
  l.type = LayerType::Conv;
  l.name = name;
  l.out = out;
  l.kernel = kernel;
  l.stride = stride;
  l.pad = pad;
  l.groups = groups;
  l.bias_init = bias_init;
  return l;
}
LayerSpec linear(const char* name, int out, float bias_init) {
  LayerSpec l;
  l.type = LayerType::Linear;
  l.name = name;
  l.out = out;
  l.bias_init = bias_init;
  return l;
}
LayerSpec simple(LayerType t) {
  LayerSpec l;
  l.type = t;
  return l;
}
LayerSpec lrn_per_column() {
  LayerSpec l = simple(LayerType::Lrn);
  l.groups = 2;
  return l;
}
LayerSpec pool(int kernel, int stride) {
  LayerSpec l = simple(LayerType::MaxPool);
  l.kernel = kernel;
  l.stride = stride;
  return l;
}

// The paper's structure: conv1-relu-lrn-pool, conv2 (own column)-relu-lrn-pool,
// conv3 (both columns)-relu, conv4, conv5 (own column)-relu-pool, fc6/fc7 with dropout,
// fc8. `one` is the bias of conv2, conv4, conv5, fc6 and fc7 (the paper's 1).
NetConfig alexnet_structure(const char* name, int size, int classes, const int ch[5], int k1,
                            int s1, int p1, int k2, int p2, int fc, float weight_std, float one) {
  NetConfig c;
  c.name = name;
  c.height = c.width = size;
  c.classes = classes;
  c.weight_std = weight_std;
  auto R = [] { return simple(LayerType::Relu); };
  c.layers = {conv("conv1", ch[0], k1, s1, p1, 1, 0), R(), lrn_per_column(), pool(3, 2),
              conv("conv2", ch[1], k2, 1, p2, 2, one), R(), lrn_per_column(), pool(3, 2),
              conv("conv3", ch[2], 3, 1, 1, 1, 0), R(),
              conv("conv4", ch[3], 3, 1, 1, 2, one), R(),
              conv("conv5", ch[4], 3, 1, 1, 2, one), R(), pool(3, 2),
              linear("fc6", fc, one), R(), simple(LayerType::Dropout),
              linear("fc7", fc, one), R(), simple(LayerType::Dropout),
              linear("fc8", classes, 0)};
  return c;
}

// torchvision's AlexNet (torchvision.models.alexnet, the "one weird trick" variant its
// ImageNet weights were trained with): one column, 64/192/384/256/256 kernels, no LRN,
// conv1 11x11/4 padded by 2 so that 224 inputs give 55x55 and the last map is 6x6 (where
// torchvision's AdaptiveAvgPool2d((6,6)) is the identity, so it has no layer here), and
// dropout before fc6 and before fc7 (the order of torchvision's classifier: Dropout,
// Linear, ReLU, Dropout, Linear, ReLU, Linear). Its parameters are torchvision's one for
// one (61,100,840; alexnet import-weights maps them by position). The initialization is
// not torchvision's (PyTorch's uniform per fan-in is not one of ours): the paper's std
// with zero biases, for a network whose weights are meant to be imported.
NetConfig torchvision_alexnet() {
  NetConfig c;
  c.name = "torchvision-alexnet";
  c.height = c.width = 224;
  c.classes = 1000;
  c.weight_std = 0.01f;
  auto R = [] { return simple(LayerType::Relu); };
  auto D = [] { return simple(LayerType::Dropout); };
  c.layers = {conv("conv1", 64, 11, 4, 2, 1, 0), R(), pool(3, 2),
              conv("conv2", 192, 5, 1, 2, 1, 0), R(), pool(3, 2),
              conv("conv3", 384, 3, 1, 1, 1, 0), R(),
              conv("conv4", 256, 3, 1, 1, 1, 0), R(),
              conv("conv5", 256, 3, 1, 1, 1, 0), R(), pool(3, 2),
              D(), linear("fc6", 4096, 0), R(),
              D(), linear("fc7", 4096, 0), R(),
              linear("fc8", 1000, 0)};
  return c;
}

}  // namespace

std::vector<std::string> preset_names() {
  return {"alexnet", "alexnet-64", "alexnet-32", "tiny", "torchvision-alexnet"};
}

NetConfig preset_config(const std::string& name) {
  if (name == "alexnet") {
    const int ch[5] = {96, 256, 384, 384, 256};
    return alexnet_structure("alexnet", 227, 1000, ch, 11, 4, 0, 5, 2, 4096, 0.01f, 1.0f);
  }
  // The small variants keep the structure but not the paper's initialization: with
  // std 0.01 and biases 1 they sit at loss ln(classes) for hundreds of steps (the stall
  // the paper's init is known for; measured on alexnet-32 in both PyTorch and ours),
  // while std 0.03 with zero biases trains at once at the paper's LR 0.01 on raw
  // 0..255 pixels minus the mean (measured on Fashion-MNIST: 37% top-1 error after two
  // short epochs; std 0.05 diverges at LR 0.01 there).
  if (name == "alexnet-64") {
    const int ch[5] = {48, 128, 192, 192, 128};
    return alexnet_structure("alexnet-64", 64, 10, ch, 7, 2, 0, 5, 2, 1024, 0.03f, 0.0f);
  }
  if (name == "alexnet-32") {
    const int ch[5] = {32, 64, 96, 96, 64};
    return alexnet_structure("alexnet-32", 32, 10, ch, 5, 1, 2, 5, 2, 512, 0.03f, 0.0f);
  }
  if (name == "tiny") {
    const int ch[5] = {4, 8, 8, 8, 4};
    return alexnet_structure("tiny", 16, 5, ch, 3, 1, 1, 3, 1, 16, 0.01f, 1.0f);
  }
  if (name == "torchvision-alexnet") return torchvision_alexnet();
  std::string names;
  for (auto& n : preset_names()) names += (names.empty() ? "" : ", ") + n;
  throw std::invalid_argument("unknown model '" + name + "': expected one of " + names);
}

}  // namespace alexnet
