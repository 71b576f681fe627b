// The network's inference forward as an ONNX model (protobuf through onnx-proto's
// generated protobufjs code): input `images` float32 [N, C, H, W] (N dynamic), outputs
// `logits` [N, classes] and `probabilities` (Softmax over the classes). Every layer maps to
// standard ONNX operators of the default domain, opset 17:
//   conv     Conv (kernel_shape, strides, pads, group = the config's groups; OIHW weights)
//   relu     Relu
//   lrn      LRN; ONNX divides alpha by its size and has no groups, so a window of
//            2*floor(size/2)+1 channels gets alpha * that, and a grouped LRN is
//            Split (equal parts on the channels) -> one LRN per column -> Concat
//   maxpool  MaxPool (no padding, floor output size, as ours)
//   dropout  nothing: inverted dropout is the identity at inference
//   linear   Flatten (C-order, after a conv block) + Gemm(transB = 1; [out, in] weights)
// The weights go in as initializers, float32 little-endian raw_data, under the state file's
// names (conv1.weight ... fc8.bias). Deterministic: the same network and metadata give the
// same bytes.
//
// With `mean` (the dataset's mean image, (S, S, 3) HWC float32 in pixel units) the input is
// the raw centre crop, 0..255 RGB, and the graph begins with Sub(images, mean_image): the
// mean's own centre crop at offset floor((S - crop) / 2) on both axes, as a [1, 3, crop, crop]
// NCHW initializer. That is what augmentCenter (native/src/augment.cpp) computes, pixel
// minus the mean at the patch's source position, so the graph takes the same input our
// evaluation crops before subtracting. Without it the caller subtracts the mean. The
// metadata says which (input_range, mean_subtracted_in_graph).
import { endianness } from 'os';
import { onnx } from 'onnx-proto';

import { checkConfig, type NetConfig, type Network } from './index';

export const ONNX_OPSET = 17;
// ONNX 1.12 (opset 17) writes IR version 8; onnxruntime 1.30 reads IR <= 11.
export const ONNX_IR_VERSION = 8;
export const ONNX_INPUT = 'images';
export const ONNX_LOGITS = 'logits';
export const ONNX_PROBABILITIES = 'probabilities';
export const ONNX_MEAN = 'mean_image';

export interface OnnxExportOptions {
  // metadata_props (string to string), after the ones written here (model, classes, input, ...).
  metadata?: Record<string, string>;
  // The model's doc_string; default: what the input must be.
  docString?: string;
  // How the input was made from an image, when known (a sentence), for the input's doc_string.
  inputDoc?: string;
  producerVersion?: string;
  // The dataset's mean image, subtracted inside the graph (see the top of this file).
  mean?: { image: Float32Array; size: number };
  // metadata_props class_ids / class_names (JSON arrays, one entry per class, in output order).
  classIds?: string[];
  classNames?: string[];
}

// The mean image's centre crop as NCHW [3, crop, crop]: out[c][y][x] = image[o + y][o + x][c]
// with o = floor((size - crop) / 2), the offset augment_center takes for both axes.
export function centerCropMean(image: Float32Array, size: number, crop: number): Float32Array {
  if (!Number.isInteger(size) || !Number.isInteger(crop) || crop < 1 || crop > size) throw new Error(`ONNX export: cannot take a ${crop}x${crop} centre crop of a ${size}x${size} mean image`);
  if (image.length !== size * size * 3) throw new Error(`ONNX export: the mean image has ${image.length} values, not ${size}x${size}x3 = ${size * size * 3} (H, W, RGB)`);
  const o = Math.floor((size - crop) / 2), plane = crop * crop;
  const out = new Float32Array(3 * plane);
  for (let y = 0; y < crop; y++) {
    for (let x = 0; x < crop; x++) {
      const at = ((o + y) * size + (o + x)) * 3;
      for (let c = 0; c < 3; c++) out[c * plane + y * crop + x] = image[at + c];
    }
  }
  return out;
}

type Source = Pick<Network, 'config' | 'params' | 'weight'>;

const { AttributeProto, TensorProto } = onnx;
const FLOAT = TensorProto.DataType.FLOAT;

// Float32 values as little-endian bytes: a view on a little-endian machine, else a copy.
function littleEndian(values: Float32Array): Uint8Array {
  if (endianness() === 'LE') return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const out = new Uint8Array(values.byteLength);
  const view = new DataView(out.buffer);
  values.forEach((v, i) => view.setFloat32(i * 4, v, true));
  return out;
}

type Attr = number | number[] | string;

function attribute(name: string, value: Attr, float = false): onnx.IAttributeProto {
  if (typeof value === 'string') return { name, type: AttributeProto.AttributeType.STRING, s: Buffer.from(value, 'utf8') };
  if (Array.isArray(value)) return { name, type: AttributeProto.AttributeType.INTS, ints: value };
  return float ? { name, type: AttributeProto.AttributeType.FLOAT, f: value } : { name, type: AttributeProto.AttributeType.INT, i: value };
}

function tensorValue(name: string, dims: (number | string)[], doc?: string): onnx.IValueInfoProto {
  return {
    name,
    docString: doc,
    type: { tensorType: { elemType: FLOAT, shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) } } },
  };
}

// Fresh value/node names, none of them in `taken`: `base`, else `base_2`, `base_3`... Each
// base remembers the suffix it reached, so n layers under one scope (say a run of relus)
// cost n lookups, not n^2 / 2; the names are those of the smallest free suffix, as the
// suffixes a base skipped stay taken.
export function nameAllocator(taken: Iterable<string>): (base: string) => string {
  const used = new Set<string>(taken);
  const next = new Map<string, number>();
  return (base) => {
    let name = base;
    let i = next.get(base) ?? 2;
    if (used.has(name)) {
      while (used.has(`${base}_${i}`)) i++;
      name = `${base}_${i}`;
      next.set(base, i + 1);
    }
    used.add(name);
    return name;
  };
}

// The whole model, encoded. Throws (naming the layer) on a config the exporter cannot map.
export function exportOnnx(net: Source, options: OnnxExportOptions = {}): Uint8Array {
  const config: NetConfig = net.config;
  const shapes = checkConfig(config);
  const { channels, height, width } = config.input;
  const nodes: onnx.INodeProto[] = [];
  const initializers: onnx.ITensorProto[] = [];
  const fresh = nameAllocator([ONNX_INPUT, ONNX_LOGITS, ONNX_PROBABILITIES, ONNX_MEAN, ...net.params.map((p) => p.name)]);
  const node = (opType: string, inputs: string[], output: string | string[], attrs: Record<string, Attr> = {}, floats: string[] = []): void => {
    const outputs = Array.isArray(output) ? output : [output];
    nodes.push({
      opType, name: outputs[0], input: inputs, output: outputs, domain: '',
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v, floats.includes(k))),
    });
  };
  const paramInfo = new Map(net.params.map((p) => [p.name, p]));
  const param = (name: string): string => {
    const info = paramInfo.get(name);
    if (!info) throw new Error(`ONNX export: the network has no parameter '${name}'`);
    initializers.push({ name, dims: info.shape, dataType: FLOAT, rawData: littleEndian(net.weight(name)) });
    return name;
  };

  const mean = options.mean;
  if (mean !== undefined) {
    if (channels !== 3 || height !== width) throw new Error(`ONNX export: a mean image goes with square RGB inputs, not [${channels}, ${height}, ${width}]`);
    initializers.push({ name: ONNX_MEAN, dims: [1, 3, height, width], dataType: FLOAT, rawData: littleEndian(centerCropMean(mean.image, mean.size, height)) });
  }
  for (const [what, list] of [['classIds', options.classIds], ['classNames', options.classNames]] as const) {
    if (list !== undefined && list.length !== config.classes) throw new Error(`ONNX export: ${what} has ${list.length} entries, the model ${config.classes} classes`);
  }

  let x = ONNX_INPUT;
  if (mean !== undefined) {
    x = fresh('input.centered');
    node('Sub', [ONNX_INPUT, ONNX_MEAN], x);
  }
  let scope = 'input';       // the last named layer, for the names of the unnamed ones after it
  let flat = false;
  let c = channels;          // channels of x while it is 4-D
  config.layers.forEach((l, i) => {
    const last = i === config.layers.length - 1;
    switch (l.type) {
      case 'conv': {
        const k = l.kernel, s = l.stride ?? 1, p = l.pad ?? 0;
        const y = fresh(l.name);
        node('Conv', [x, param(`${l.name}.weight`), param(`${l.name}.bias`)], y, {
          kernel_shape: [k, k], strides: [s, s], pads: [p, p, p, p], dilations: [1, 1], group: l.groups ?? 1,
        });
        x = y;
        scope = l.name;
        break;
      }
      case 'relu': {
        const y = fresh(`${scope}.relu`);
        node('Relu', [x], y);
        x = y;
        break;
      }
      case 'lrn': {
        // Ours: b_c = a_c / (k + alpha * sum_{|j-c| <= size/2, j in c's group} a_j^2)^beta.
        // ONNX: window [c - floor((n-1)/2), c + ceil((n-1)/2)] and alpha/n: n = 2*half+1.
        const half = Math.floor((l.size ?? 5) / 2), n = 2 * half + 1;
        const attrs = { size: n, alpha: (l.alpha ?? 1e-4) * n, beta: l.beta ?? 0.75, bias: l.k ?? 2 };
        const floats = ['alpha', 'beta', 'bias'];
        const g = l.groups ?? 1;
        const y = fresh(`${scope}.lrn`);
        if (g === 1) {
          node('LRN', [x], y, attrs, floats);
        } else {
          if (c % g !== 0) throw new Error(`ONNX export: layer ${i} (lrn): groups=${g} does not divide ${c} channels`);
          const parts = Array.from({ length: g }, (_, j) => fresh(`${y}.split${j}`));
          node('Split', [x], parts, { axis: 1 });  // opset 13+: no `split` input = equal parts
          const normed = parts.map((part, j) => {
            const out = fresh(`${y}.group${j}`);
            node('LRN', [part], out, attrs, floats);
            return out;
          });
          node('Concat', normed, y, { axis: 1 });
        }
        x = y;
        break;
      }
      case 'maxpool': {
        const y = fresh(`${scope}.pool`);
        node('MaxPool', [x], y, { kernel_shape: [l.kernel, l.kernel], strides: [l.stride, l.stride], pads: [0, 0, 0, 0], ceil_mode: 0 });
        x = y;
        break;
      }
      case 'dropout':
        break;  // inverted dropout: identity at test time
      case 'linear': {
        if (!flat) {
          const f = fresh(`${scope}.flatten`);
          node('Flatten', [x], f, { axis: 1 });
          x = f;
          flat = true;
        }
        const y = last ? ONNX_LOGITS : fresh(l.name);
        node('Gemm', [x, param(`${l.name}.weight`), param(`${l.name}.bias`)], y, { transB: 1, alpha: 1, beta: 1 }, ['alpha', 'beta']);
        x = y;
        scope = l.name;
        break;
      }
      default:
        throw new Error(`ONNX export: layer ${i} has type '${(l as { type: string }).type}', which has no ONNX mapping`);
    }
    c = shapes[i][0];
  });
  if (x !== ONNX_LOGITS) throw new Error('ONNX export: the last layer must be the linear layer producing the logits');
  node('Softmax', [ONNX_LOGITS], ONNX_PROBABILITIES, { axis: 1 });

  const inputDoc = `float32 [N, ${channels}, ${height}, ${width}] NCHW: ${options.inputDoc ?? (mean !== undefined
    ? `the central ${height}x${width} patch (offset ${Math.floor((mean.size - height) / 2)}) of an image whose shorter side was resized to S=${mean.size} and centre-cropped to SxS, in raw 0..255 RGB units; the model subtracts the dataset's mean image at the patch's pixels`
    : `the central ${height}x${width} patch of an image whose shorter side was resized to S and centre-cropped to SxS (S: the image size of the dataset the model trained on), in raw 0..255 RGB units minus that dataset's mean image at the patch's pixels (the caller subtracts the mean)`)}`;
  const model: onnx.IModelProto = {
    irVersion: ONNX_IR_VERSION,
    opsetImport: [{ domain: '', version: ONNX_OPSET }],
    producerName: 'alexnet-temporal',
    producerVersion: options.producerVersion ?? '',
    domain: 'alexnet',
    modelVersion: 1,
    docString: options.docString ?? `${config.name ?? 'custom'} (AlexNet, ${config.classes} classes), inference forward. Input ${inputDoc}.`,
    graph: {
      name: config.name ?? 'alexnet',
      node: nodes,
      initializer: initializers,
      input: [tensorValue(ONNX_INPUT, ['N', channels, height, width], inputDoc)],
      output: [
        tensorValue(ONNX_LOGITS, ['N', config.classes], 'class scores (the last linear layer)'),
        tensorValue(ONNX_PROBABILITIES, ['N', config.classes], 'Softmax(logits) over the classes'),
      ],
    },
    metadataProps: Object.entries({
      model: config.name ?? 'custom',
      classes: String(config.classes),
      input: inputDoc,
      config: JSON.stringify(config),
      input_range: mean !== undefined ? '0..255 RGB' : '0..255 RGB minus the dataset mean image (mean-subtracted by the caller)',
      mean_subtracted_in_graph: String(mean !== undefined),
      ...(options.classIds ? { class_ids: JSON.stringify(options.classIds) } : {}),
      ...(options.classNames ? { class_names: JSON.stringify(options.classNames) } : {}),
      ...options.metadata,
    }).map(([key, value]) => ({ key, value })),
  };
  return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
}
