// Workflow input validation: TrainAlexNet's GEMM precision option (device cuda only), and
// unknown fields refused in every workflow's input, with messages that name the field.
// Pure functions: no server needed (test/train.test.ts starts one through the official CLI).
import test from 'ava';

import { validateClassifyInput } from '../workflows/classify-images';
import { validateEvaluateInput } from '../workflows/evaluate-alexnet';
import { validatePrepareInput } from '../workflows/prepare-dataset';
import { validateTrainInput } from '../workflows/train-alexnet';

const base = { store: 'file:///tmp/store', datasetName: 'fm' };

test('validateTrainInput: precision is absent by default and passes through with device cuda', (t) => {
  t.is(validateTrainInput(base, 'run').precision, undefined);
  t.is(validateTrainInput({ ...base, device: 'cuda', precision: 'bf16' }, 'run').precision, 'bf16');
  t.is(validateTrainInput({ ...base, device: 'cuda', precision: 'tf32' }, 'run').precision, 'tf32');
  t.is(validateTrainInput({ ...base, precision: 'fp32' }, 'run').precision, 'fp32');
  t.is(validateTrainInput({ ...base, precision: 'bf16' }, 'run').precision, 'bf16', 'bf16 on the CPU (AVX512_BF16 where it has it)');
});

test('validateTrainInput: an unknown precision, or tf32 on the CPU, is refused by name', (t) => {
  t.throws(() => validateTrainInput({ ...base, device: 'cuda', precision: 'fp16' as never }, 'run'),
    { message: 'Expected one of "fp32", "tf32", "bf16" for precision but received "fp16"' });
  t.throws(() => validateTrainInput({ ...base, precision: 'tf32' }, 'run'),
    { message: "precision 'tf32' needs device 'cuda' (TF32 is a GPU tensor-core format; the CPU takes 'fp32' or 'bf16')" });
});

// Unknown fields (issue 21): every workflow's input refuses fields it does not know, naming
// the field and the known name it most likely meant, so a misspelt `epoch` never trains for
// the default 90 epochs and an unsupported option never silently does nothing.
test('every workflow input refuses an unknown field, naming it and the nearest known name', (t) => {
  t.throws(() => validateTrainInput({ ...base, epoch: 3 } as never, 'run'), {
    name: 'ArgumentError',
    message: /^Unknown field "epoch" in the TrainAlexNet input; did you mean "epochs"\? Known fields: store, datasetName, dataset, model, /,
  });
  t.throws(() => validateTrainInput({ ...base, BatchSize: 64 } as never, 'run'), { message: /Unknown field "BatchSize" .*did you mean "batchSize"\?/ });
  t.throws(() => validateTrainInput({ ...base, optimizer: 'adam' } as never, 'run'), { message: /^Unknown field "optimizer" in the TrainAlexNet input\. Known fields: / });
  t.throws(() => validateTrainInput({ ...base, retention: { keepLst: 3 } } as never, 'run'), { message: /^Unknown field "keepLst" in retention; did you mean "keepLast"\?/ });
  t.throws(() => validateTrainInput({ ...base, lrPolicy: { type: 'fixed', lR: 0.1 } } as never, 'run'), { message: /Unknown field "lR" in lrPolicy \(a fixed policy\); did you mean "lr"\?/ });
  t.throws(() => validatePrepareInput({ dataset: '/d', store: '/s', shardsize: 10 } as never), { message: /^Unknown field "shardsize" in the PrepareDataset input; did you mean "shardSize"\?/ });
  t.throws(() => validateEvaluateInput({ store: '/s', checkpoint: { run: 'r' }, datasetName: 'd', crop: 10 } as never), { message: /^Unknown field "crop" in the EvaluateAlexNet input; did you mean "crops"\?/ });
  t.throws(() => validateClassifyInput({ store: '/s', checkpoint: { run: 'r' }, source: '/i', top_k: 3 } as never), { message: /^Unknown field "top_k" in the ClassifyImages input; did you mean "topK"\?/ });
  // What every known field looks like still passes.
  t.notThrows(() => validateTrainInput({ ...base, epochs: 2, batchSize: 16, retention: { keepLast: 1 }, lrPolicy: { type: 'fixed', lr: 0.1 } }, 'run'));
});
