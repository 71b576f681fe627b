// Every workflow the worker registers (the worker bundles this file), and each one's
// Worker Versioning behaviour: what a versioned worker (`alexnet worker --deployment NAME
// --build-id ID`) does with a run when a newer build becomes current. Unversioned workers
// (one machine, the tests) ignore it. Why each: docs/deploy.md#upgrades.
import type { WorkflowDefinitionOptionsOrGetter } from '@temporalio/common';
import { setWorkflowOptions, workflowInfo } from '@temporalio/workflow';

import { PrepareDataset } from './prepare-dataset';
import { TrainAlexNet } from './train-alexnet';
import { EvaluateAlexNet } from './evaluate-alexnet';
import { ClassifyImages } from './classify-images';

export { PrepareDataset, TrainAlexNet, EvaluateAlexNet, ClassifyImages };

// PINNED: a run finishes on the build that started it, so new code never replays an old
// history and no change needs patched(). The short ones (minutes to hours) drain quickly.
// TrainAlexNet runs for days: pinned too, and it moves to the current build at its next
// continueAsNew (initialVersioningBehavior AUTO_UPGRADE in train-alexnet.ts), a fresh
// history at an epoch boundary, where only its input and carry cross builds.
// Declared only on a versioned worker (one with a Worker Deployment name): the server refuses
// a behaviour from an unversioned one, which has a build id of its own but no deployment.
const PINNED: WorkflowDefinitionOptionsOrGetter = () => (workflowInfo().currentDeploymentVersion?.deploymentName ? { versioningBehavior: 'PINNED' } : {});

setWorkflowOptions(PINNED, PrepareDataset);
setWorkflowOptions(PINNED, TrainAlexNet);
setWorkflowOptions(PINNED, EvaluateAlexNet);
setWorkflowOptions(PINNED, ClassifyImages);
