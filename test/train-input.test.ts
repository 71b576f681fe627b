// TrainAlexNet's input validation: the GEMM precision option (device cuda only), with
// messages that name the field. Pure functions: no server needed.
import test from 'ava';

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
