// Network configuration: a list of layers (the paper's AlexNet, smaller variants of the
// same structure, or any user list of the same layer types), input size and class count.
// The same structure travels as JSON in TypeScript and in checkpoint metadata; the
// binding converts between the two (native/binding/convert.cpp).
#pragma once
#include <string>
#include <vector>

namespace alexnet {

enum class LayerType { Conv, Relu, Lrn, MaxPool, Linear, Dropout };

const char* layer_type_name(LayerType t);
// Throws std::invalid_argument naming the accepted types when `name` is unknown.
LayerType parse_layer_type(const std::string& name);

struct LayerSpec {
  LayerType type = LayerType::Relu;
  std::string name;      // conv and linear only: parameter prefix ("conv1" -> conv1.weight)
  int out = 0;           // conv: output channels; linear: output features
  int kernel = 0;        // conv, maxpool
  int stride = 1;        // conv, maxpool
  int pad = 0;           // conv
  int groups = 1;        // conv: the columns; lrn: independent channel blocks
  float bias_init = 0;   // conv, linear: the paper's 1 for conv2/4/5, fc6/7, else 0
  int size = 5;          // lrn window n
  float alpha = 1e-4f, beta = 0.75f, k = 2.0f;  // lrn, the paper's values
  float p = 0.5f;        // dropout probability
};

struct NetConfig {
  std::string name;
  int channels = 3, height = 227, width = 227;
  int classes = 1000;
  float weight_std = 0.01f;  // the paper's N(0, 0.01^2) initialization
  std::vector<LayerSpec> layers;
};

// Activation shape after a layer: (C,H,W) for maps, (features,1,1) after a linear layer.
struct Shape {
  int c = 0, h = 1, w = 1;
  long long size() const { return (long long)c * h * w; }
};

// Shapes of every layer output; throws std::invalid_argument naming the first bad layer
// (sizes that do not fit, groups that do not divide, a last layer that is not a linear
// layer with `classes` outputs, ...).
std::vector<Shape> infer_shapes(const NetConfig& cfg);

// Built-in models: "alexnet" (the paper's, 227x227, 1000 classes, the paper's init), "alexnet-64" and
// "alexnet-32" (the same structure scaled to 64x64 and 32x32 inputs, 10 classes; weights
// std 0.03 and zero biases, because the paper's init stalls at that size), "tiny" (a
// minimal net with every layer type, for tests) and "torchvision-alexnet"
// (torchvision's one-column AlexNet at 224x224, 1000 classes, for its imported weights).
// Throws for other names.
NetConfig preset_config(const std::string& name);
std::vector<std::string> preset_names();

}  // namespace alexnet
