{{/*
One worker pool of one build: a Deployment of `alexnet worker` and the KEDA ScaledObject
that sizes it on its task queue's backlog. Called for each pool of the current build and
of each versioning.previousBuilds entry (same settings, that build's image), so an old
build's pool keeps serving the runs pinned to it until they drain.

Arguments (a dict): root (the chart's context), pool (its values: cpuWorker, gpuWorker or
batchWorker), role ("cpu", "gpu" or "batch"), buildId, tag (the image tag), current (bool).
*/}}
{{- define "alexnet.workerPool" -}}
{{- $root := .root -}}
{{- $pool := .pool -}}
{{- $gpu := eq .role "gpu" -}}
{{- $image := ternary $root.Values.gpuImage $root.Values.image $gpu -}}
{{- $versioned := $root.Values.versioning.enabled -}}
{{- $component := printf "%s-worker-%s" .role (include "alexnet.buildSuffix" .buildId) -}}
{{- $name := printf "%s-%s" (include "alexnet.fullname" $root) $component | trunc 63 | trimSuffix "-" -}}
{{- /* Only the current build's CPU pool keeps a floor: an old build's pools go to zero once drained. */ -}}
{{- $minReplicas := ternary $pool.minReplicaCount 0 .current -}}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  labels:
    {{- include "alexnet.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ $component }}
    alexnet.dev/pool: {{ .role }}
    alexnet.dev/build-id: {{ .buildId | quote }}
spec:
  # No replicas: KEDA owns the count (an upgrade must not reset it). A new Deployment starts
  # with one pod, whose first poll registers the pool's task queue with its build's Worker
  # Deployment Version before the pool may go to zero (initialCooldownPeriod below).
  revisionHistoryLimit: 3
  selector:
    matchLabels:
      {{- include "alexnet.selectorLabels" (dict "root" $root "component" $component) | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "alexnet.selectorLabels" (dict "root" $root "component" $component) | nindent 8 }}
        alexnet.dev/pool: {{ .role }}
        alexnet.dev/build-id: {{ .buildId | quote }}
    spec:
      {{- include "alexnet.podCommon" $root | nindent 6 }}
      # SIGTERM: a running epoch checkpoints at its next batch and the worker exits 0.
      terminationGracePeriodSeconds: {{ $pool.terminationGracePeriodSeconds }}
      {{- with $pool.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $pool.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $pool.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: worker
          image: {{ printf "%s:%s" $image.repository .tag | quote }}
          imagePullPolicy: {{ $image.pullPolicy }}
          args: ["worker", "--task-queue", {{ $pool.taskQueue | quote }}{{ if $gpu }}, "--gpu"{{ end }}]
          env:
            {{- include "alexnet.env" $root | nindent 12 }}
            {{- if $versioned }}
            - name: ALEXNET_WORKER_DEPLOYMENT
              value: {{ $root.Values.versioning.deploymentName | quote }}
            - name: ALEXNET_BUILD_ID
              value: {{ .buildId | quote }}
            {{- end }}
            {{- if $gpu }}
            - name: ALEXNET_DEVICE
              value: cuda
            - name: ALEXNET_CUDA_DEVICES
              value: {{ $pool.cudaDevices | quote }}
            - name: ALEXNET_CUDA_PRECISION
              value: {{ $pool.precision | quote }}
            {{- end }}
          resources:
            {{- $resources := deepCopy $pool.resources }}
            {{- if $gpu }}
            {{- $limits := default (dict) $resources.limits }}
            {{- $_ := set $limits "nvidia.com/gpu" $pool.gpusPerPod }}
            {{- $_ := set $resources "limits" $limits }}
            {{- end }}
            {{- toYaml $resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          volumeMounts:
            {{- include "alexnet.volumeMounts" $root | nindent 12 }}
      volumes:
        {{- include "alexnet.volumes" $root | nindent 8 }}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: {{ $name }}
  labels:
    {{- include "alexnet.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ $component }}
    alexnet.dev/pool: {{ .role }}
    alexnet.dev/build-id: {{ .buildId | quote }}
spec:
  scaleTargetRef:
    name: {{ $name }}
  pollingInterval: {{ $root.Values.keda.pollingInterval }}
  cooldownPeriod: {{ $root.Values.keda.cooldownPeriod }}
  # The first pod's poll registers the queue with the build's version (above).
  initialCooldownPeriod: {{ $root.Values.keda.cooldownPeriod }}
  minReplicaCount: {{ $minReplicas }}
  maxReplicaCount: {{ $pool.maxReplicaCount }}
  triggers:
    - type: temporal
      metadata:
        {{- include "alexnet.kedaConnection" $root | nindent 8 }}
        taskQueue: {{ $pool.taskQueue | quote }}
        # GPU workers poll activities only; the others run workflows too.
        queueTypes: {{ ternary "activity" "workflow,activity" $gpu | quote }}
        targetQueueSize: {{ $pool.targetQueueSize | quote }}
        activationTargetQueueSize: "0"
        {{- if $versioned }}
        workerDeploymentName: {{ $root.Values.versioning.deploymentName | quote }}
        workerDeploymentBuildId: {{ .buildId | quote }}
        {{- end }}
        # A running epoch or shard is not backlog: the pool stays up while a run of its
        # build is running (and while an old build drains), and goes to zero after.
        includeRunningWorkflowCount: "true"
        {{- if $gpu }}
        workflowTaskQueueForCount: {{ $root.Values.cpuWorker.taskQueue | quote }}
        {{- end }}
      {{- if or $root.Values.temporal.apiKeySecret.name $root.Values.temporal.mtlsSecret.name }}
      authenticationRef:
        name: {{ include "alexnet.fullname" $root }}-temporal
      {{- end }}
{{- end -}}
