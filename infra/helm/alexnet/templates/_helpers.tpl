{{/* Names, labels and the pieces every pod shares: one place each. */}}

{{- define "alexnet.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "alexnet.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component ("serve", "cpu-worker-0-1-0", ...). */}}
{{- define "alexnet.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "alexnet.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "alexnet.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name: the existing service account the pods run as (serviceAccount.create is false)" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The image tag: the chart's appVersion unless image.tag says otherwise. */}}
{{- define "alexnet.tag" -}}
{{- default .Chart.AppVersion .Values.image.tag -}}
{{- end -}}

{{/* The Worker Versioning build id of this release's pools: the image tag unless set. */}}
{{- define "alexnet.buildId" -}}
{{- default (include "alexnet.tag" .) .Values.versioning.buildId -}}
{{- end -}}

{{/* A build id made fit for object names (lower case, dots to dashes). */}}
{{- define "alexnet.buildSuffix" -}}
{{- . | lower | replace "." "-" | replace "_" "-" | replace "+" "-" | trunc 20 | trimSuffix "-" -}}
{{- end -}}

{{- define "alexnet.useTLS" -}}
{{- if or .Values.temporal.tls .Values.temporal.apiKeySecret.name .Values.temporal.mtlsSecret.name -}}true{{- end -}}
{{- end -}}

{{/* Environment of every alexnet container: Temporal and the store. Secrets are only
     ever referenced (secretKeyRef, mounted files), never written into a manifest. */}}
{{- define "alexnet.env" -}}
- name: TEMPORAL_ADDRESS
  value: {{ required "temporal.address: the Temporal frontend, host:port" .Values.temporal.address | quote }}
- name: TEMPORAL_NAMESPACE
  value: {{ .Values.temporal.namespace | quote }}
{{- if .Values.temporal.tls }}
- name: TEMPORAL_TLS
  value: "true"
{{- end }}
{{- with .Values.temporal.apiKeySecret }}
{{- if .name }}
- name: TEMPORAL_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .name }}
      key: {{ .key }}
{{- end }}
{{- end }}
{{- with .Values.temporal.mtlsSecret }}
{{- if .name }}
- name: TEMPORAL_TLS_CERT
  value: /etc/alexnet/temporal-tls/{{ .certKey }}
- name: TEMPORAL_TLS_KEY
  value: /etc/alexnet/temporal-tls/{{ .keyKey }}
{{- if .caKey }}
- name: TEMPORAL_TLS_CA
  value: /etc/alexnet/temporal-tls/{{ .caKey }}
{{- end }}
{{- end }}
{{- end }}
- name: AWS_REGION
  value: {{ .Values.store.region | quote }}
{{- if .Values.store.endpoint }}
- name: AWS_ENDPOINT_URL
  value: {{ .Values.store.endpoint | quote }}
{{- end }}
{{- with .Values.store.credentialsSecret }}
{{- if .name }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ .name }}
      key: {{ .accessKeyIdKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .name }}
      key: {{ .secretAccessKeyKey }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Writable scratch (the root filesystem is read-only) and the mTLS files. */}}
{{- define "alexnet.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .Values.temporal.mtlsSecret.name }}
- name: temporal-tls
  mountPath: /etc/alexnet/temporal-tls
  readOnly: true
{{- end }}
{{- end -}}

{{- define "alexnet.volumes" -}}
- name: tmp
  emptyDir: {}
{{- if .Values.temporal.mtlsSecret.name }}
- name: temporal-tls
  secret:
    secretName: {{ .Values.temporal.mtlsSecret.name }}
    defaultMode: 0400
{{- end }}
{{- end -}}

{{/* The parts of a pod spec every pod shares. */}}
{{- define "alexnet.podCommon" -}}
serviceAccountName: {{ include "alexnet.serviceAccountName" . }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end -}}

{{/* KEDA's temporal trigger metadata shared by every pool: the connection. */}}
{{- define "alexnet.kedaConnection" -}}
endpoint: {{ .Values.temporal.address | quote }}
namespace: {{ .Values.temporal.namespace | quote }}
enableTLS: {{ ternary "true" "false" (eq (include "alexnet.useTLS" .) "true") | quote }}
{{- with .Values.temporal.tlsServerName }}
tlsServerName: {{ . | quote }}
{{- end }}
{{- end -}}
