{{/* Chart name, overridable. */}}
{{- define "countersign.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Prefix of every resource name: <release>-countersign unless the release name already holds it. */}}
{{- define "countersign.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "countersign.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "countersign.selectorLabels" -}}
app.kubernetes.io/name: {{ include "countersign.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "countersign.labels" -}}
helm.sh/chart: {{ include "countersign.chart" . }}
{{ include "countersign.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: countersign
{{- end }}

{{- define "countersign.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The chart-managed Secret (inline values only). */}}
{{- define "countersign.secretName" -}}
{{- include "countersign.fullname" . }}
{{- end }}

{{/* Whether a secrets.<item> is configured at all (inline or existing Secret). */}}
{{- define "countersign.secretSet" -}}
{{- if or .existingSecret .value }}true{{ end }}
{{- end }}

{{/*
Where the pods read secrets.<item> from: {"name": Secret, "key": key}.
Call with (dict "root" $ "item" .Values.secrets.x "key" "KEY_IN_CHART_SECRET").
*/}}
{{- define "countersign.secretRef" -}}
{{- if .item.existingSecret -}}
name: {{ .item.existingSecret }}
key: {{ .item.existingSecretKey }}
{{- else -}}
name: {{ include "countersign.secretName" .root }}
key: {{ .key }}
{{- end -}}
{{- end }}

{{/* The chart's refusals: what is missing or unsupported, all at once. */}}
{{- define "countersign.validate" -}}
{{- $s := .Values.secrets }}
{{- $missing := list }}
{{- if not (include "countersign.secretSet" $s.databaseUrl) }}
{{- $missing = append $missing "secrets.databaseUrl (value or existingSecret): the PostgreSQL URL" }}
{{- end }}
{{- if not (include "countersign.secretSet" $s.operatorKey) }}
{{- $missing = append $missing "secrets.operatorKey (value or existingSecret): the operator credential" }}
{{- end }}
{{- if not (or (include "countersign.secretSet" $s.jwtSecret) (include "countersign.secretSet" $s.jwtPrivateKey)) }}
{{- $missing = append $missing "secrets.jwtSecret or secrets.jwtPrivateKey (value or existingSecret): token signing" }}
{{- end }}
{{- if not (include "countersign.secretSet" $s.historySigningKey) }}
{{- $missing = append $missing "secrets.historySigningKey (value or existingSecret): the Ed25519 key that signs history chain heads" }}
{{- end }}
{{- if $missing }}
{{- fail (printf "\n\nCountersign needs these values (see the chart's README):\n  - %s\n" (join "\n  - " $missing)) }}
{{- end }}
{{- if eq (int .Values.metrics.port) (int .Values.containerPort) }}
{{- fail (printf "metrics.port (%v) must differ from containerPort: /metrics is never served on the public port" .Values.metrics.port) }}
{{- end }}
{{- if ne .Values.workers.mode "inline" }}
{{- fail (printf "workers.mode=%q is not supported: the binary runs its workers inside the API pods only (`inline`); `separate` is reserved for a later release" .Values.workers.mode) }}
{{- end }}
{{- end }}

{{/* COUNTERSIGN_PUBLIC_URL: the value, or the first ingress host (https when the ingress has TLS). */}}
{{- define "countersign.publicUrl" -}}
{{- if .Values.config.publicUrl }}
{{- .Values.config.publicUrl }}
{{- else if and .Values.ingress.enabled .Values.ingress.hosts }}
{{- printf "%s://%s" (ternary "https" "http" (not (empty .Values.ingress.tls))) (first .Values.ingress.hosts).host }}
{{- end }}
{{- end }}

{{/* Pod volumes shared by the API pods and the migration job. */}}
{{- define "countersign.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end }}

{{/* DATABASE_URL from its Secret; the API pods and the migration job both need it. */}}
{{- define "countersign.databaseUrlEnv" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      {{- include "countersign.secretRef" (dict "root" . "item" .Values.secrets.databaseUrl "key" "DATABASE_URL") | nindent 6 }}
{{- end }}

{{/* Where the key files are mounted in the API pods. */}}
{{- define "countersign.keyDir" -}}/etc/countersign/keys{{- end }}
