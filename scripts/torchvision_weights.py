"""The Python side of `alexnet import-weights torchvision` (scripts/commands/import-weights.ts),
for Debian's /usr/bin/python3:

  torchvision_weights.py tensors IN.pth OUT.safetensors
      A torchvision state dict saved with torch.save (a pickle, which only torch reads)
      as safetensors: every tensor under its own key, float32, C order. Loaded with
      weights_only=True, so a pickle that would run code or build objects is refused.
  torchvision_weights.py categories
      The 1000 ImageNet class names torchvision ships with its AlexNet weights
      (AlexNet_Weights.IMAGENET1K_V1.meta["categories"]; offline), as a JSON array.

Needs python3-torch (tensors) and python3-torchvision (categories); the safetensors file is
written here, without the safetensors package. Errors go to stderr with exit 1.
"""
import json
import struct
import sys


def fail(message):
    print(f"torchvision_weights: {message}", file=sys.stderr)
    sys.exit(1)


def state_dict_of(path):
    try:
        import torch
    except ImportError as e:
        fail(f"PyTorch is not importable ({e}): reading a .pth needs Debian's python3-torch "
             "(scripts/install-python-deps.sh installs it), or convert it to .safetensors elsewhere")

    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        fail(f"{path}: no such file")
    except Exception as e:  # a pickle torch refuses, or not a torch file at all
        why = str(e).split("WeightsUnpickler error: ")[-1]  # torch's advice to drop weights_only is not ours
        fail(f"{path} is not a state dict that torch.load reads with weights_only=True ({why}): "
             "save the model's state dict (torch.save(model.state_dict(), FILE)) or a .safetensors")
    # A checkpoint of a training script often wraps the weights: {"state_dict": {...}}.
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        fail(f"{path} holds {type(loaded).__name__}, not a state dict (names to tensors, as model.state_dict() gives)")
    for name, t in loaded.items():
        if t.dtype != torch.float32:
            fail(f"{path}: tensor '{name}' is {t.dtype}; torchvision's AlexNet weights are float32 "
                 "(convert them with {k: v.float() for k, v in state_dict.items()})")
    return loaded


def write_safetensors(tensors, out):
    """safetensors: u64 LE header length, the JSON header (padded with spaces to 8 bytes),
    then each tensor's bytes in order."""
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        data = t.detach().contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = {"format": "pt", "source": "torchvision_weights.py"}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(out, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def categories():
    try:
        from torchvision.models import AlexNet_Weights
    except ImportError as e:
        fail(f"torchvision is not importable ({e}): install Debian's python3-torchvision "
             "(scripts/install-python-deps.sh does), or pass --class-names NAMES.json")
    return list(AlexNet_Weights.IMAGENET1K_V1.meta["categories"])


def main(argv):
    if len(argv) == 3 and argv[0] == "tensors":
        write_safetensors(state_dict_of(argv[1]), argv[2])
    elif len(argv) == 1 and argv[0] == "categories":
        print(json.dumps(categories()))
    else:
        fail("usage: torchvision_weights.py tensors IN.pth OUT.safetensors | categories")


if __name__ == "__main__":
    main(sys.argv[1:])
