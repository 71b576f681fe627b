// Every workflow the worker registers (the worker bundles this file).
export { PrepareDataset } from './prepare-dataset';
export { TrainAlexNet } from './train-alexnet';
export { EvaluateAlexNet } from './evaluate-alexnet';
export { ClassifyImages } from './classify-images';
