"""torchvision's side of the torchvision-alexnet parity check (test/torchvision.test.ts), for
Debian's /usr/bin/python3 with python3-torch, python3-torchvision and the safetensors
package (PYTHONPATH=.cache/pylib). Nothing is downloaded.

  torchvision_parity.py weights DIR SEED
      torchvision.models.alexnet() with random weights as its state dict, written as
      DIR/tv.pth (torch.save, as torchvision's download) and DIR/tv.safetensors, and
      DIR/tv-10-classes.pth (the same with a 10-class classifier, as a fine-tuned model has),
      and DIR/module.pth (a whole module pickled, which weights_only loading refuses).
      The weights are He-normal with biases U(-0.1, 0.1) rather than torchvision's default
      init, so that the logits spread over several units and the softmax is not flat.
  torchvision_parity.py logits WEIGHTS.pth IMAGES.safetensors OUT.safetensors
      `images` [N,3,224,224] raw 0..255 RGB -> torchvision's normalization -> the model
      (eval) -> `logits` [N,1000].
  torchvision_parity.py classify WEIGHTS.pth IMAGE...
      Each image through torchvision's own preprocessing for these weights
      (AlexNet_Weights.IMAGENET1K_V1.transforms(): PIL decode, resize 256 bilinear, centre
      crop 224, normalize) and the model: one JSON line, {"probabilities": [...1000]} each.
"""
import json
import os
import sys

import torch
import torch.nn as nn
import torchvision
from PIL import Image
from safetensors.torch import load_file, save_file
from torchvision.models import AlexNet_Weights

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torchvision_weights import write_safetensors  # noqa: E402

TRANSFORMS = AlexNet_Weights.IMAGENET1K_V1.transforms()


def random_alexnet(seed, classes=1000):
    torch.manual_seed(seed)
    model = torchvision.models.alexnet(weights=None, num_classes=classes)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.uniform_(m.bias, -0.1, 0.1)
    return model


def load_model(path):
    model = torchvision.models.alexnet(weights=None)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


def main(argv):
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    if argv[0] == "weights":
        out, seed = argv[1], int(argv[2])
        state = random_alexnet(seed).state_dict()
        torch.save(state, os.path.join(out, "tv.pth"))
        write_safetensors(state, os.path.join(out, "tv.safetensors"))
        torch.save(random_alexnet(seed, classes=10).state_dict(), os.path.join(out, "tv-10-classes.pth"))
        torch.save(nn.Linear(2, 2), os.path.join(out, "module.pth"))  # a pickled module, not a state dict
    elif argv[0] == "logits":
        model = load_model(argv[1])
        raw = load_file(argv[2])["images"]
        mean = torch.tensor(TRANSFORMS.mean).view(1, 3, 1, 1)
        std = torch.tensor(TRANSFORMS.std).view(1, 3, 1, 1)
        with torch.no_grad():
            logits = model((raw / 255 - mean) / std)
        save_file({"logits": logits.contiguous()}, argv[3])
    elif argv[0] == "classify":
        model = load_model(argv[1])
        for path in argv[2:]:
            x = TRANSFORMS(Image.open(path).convert("RGB")).unsqueeze(0)
            with torch.no_grad():
                p = torch.softmax(model(x), dim=1)[0]
            print(json.dumps({"probabilities": p.tolist()}))
    else:
        sys.exit(f"unknown command {argv[0]}: see the docstring")


if __name__ == "__main__":
    main(sys.argv[1:])
