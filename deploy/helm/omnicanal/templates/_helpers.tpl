{{/* Chart name, overridable. */}}
{{- define "omnicanal.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name; role suffixes (-api, -worker-metrics) are appended: 48 + 15 stays within 63. */}}
{{- define "omnicanal.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 48 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 48 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 48 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "omnicanal.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object; each role adds app.kubernetes.io/component. */}}
{{- define "omnicanal.labels" -}}
helm.sh/chart: {{ include "omnicanal.chart" . }}
{{ include "omnicanal.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "omnicanal.selectorLabels" -}}
app.kubernetes.io/name: {{ include "omnicanal.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "omnicanal.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* Stop early on settings that cannot work: every process must share one Redis. */}}
{{- define "omnicanal.validate" -}}
{{- if not (or .Values.redis.url .Values.redis.existingSecret) }}
{{- fail "set redis.url or redis.existingSecret: the API and the workers must share one Redis" }}
{{- end }}
{{- end }}

{{- define "omnicanal.redisSecretName" -}}
{{- if .Values.redis.existingSecret }}
{{- .Values.redis.existingSecret }}
{{- else }}
{{- include "omnicanal.fullname" . }}
{{- end }}
{{- end }}

{{- define "omnicanal.apiKeysSecretName" -}}
{{- if .Values.apiKeys.existingSecret }}
{{- .Values.apiKeys.existingSecret }}
{{- else }}
{{- include "omnicanal.fullname" . }}
{{- end }}
{{- end }}

{{/* "true" when the chart must create its own Secret (a value given inline, not an existing Secret). */}}
{{- define "omnicanal.createSecret" -}}
{{- if or (and .Values.redis.url (not .Values.redis.existingSecret)) (and .Values.apiKeys.keys (not .Values.apiKeys.existingSecret)) }}
{{- "true" }}
{{- end }}
{{- end }}

{{- define "omnicanal.journeysConfigMap" -}}
{{- .Values.journeys.existingConfigMap | default (printf "%s-journeys" (include "omnicanal.fullname" .)) }}
{{- end }}

{{- define "omnicanal.templatesConfigMap" -}}
{{- .Values.templates.existingConfigMap | default (printf "%s-templates" (include "omnicanal.fullname" .)) }}
{{- end }}

{{/* Environment of both roles. */}}
{{- define "omnicanal.env" -}}
- name: OMNICANAL_HOST
  value: "0.0.0.0"
- name: OMNICANAL_PORT
  value: {{ .Values.containerPort | quote }}
- name: OMNICANAL_JOURNEYS_DIR
  value: /app/journeys
- name: OMNICANAL_TEMPLATES_DIR
  value: /app/templates
- name: OMNICANAL_SHUTDOWN_GRACE
  value: {{ .Values.shutdownGrace | quote }}
# The pod name: unique among live workers, which is what partition leases need.
- name: OMNICANAL_WORKER_ID
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: OMNICANAL_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "omnicanal.redisSecretName" . }}
      key: {{ .Values.redis.secretKey }}
{{- if or .Values.apiKeys.keys .Values.apiKeys.existingSecret }}
- name: OMNICANAL_API_KEYS
  valueFrom:
    secretKeyRef:
      name: {{ include "omnicanal.apiKeysSecretName" . }}
      key: {{ .Values.apiKeys.secretKey }}
{{- end }}
{{- range $name, $value := .Values.env }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "omnicanal.probes" -}}
startupProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: {{ .Values.probes.startup.periodSeconds }}
  timeoutSeconds: {{ .Values.probes.startup.timeoutSeconds }}
  failureThreshold: {{ .Values.probes.startup.failureThreshold }}
livenessProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: {{ .Values.probes.liveness.periodSeconds }}
  timeoutSeconds: {{ .Values.probes.liveness.timeoutSeconds }}
  failureThreshold: {{ .Values.probes.liveness.failureThreshold }}
readinessProbe:
  httpGet:
    path: /readyz
    port: http
  periodSeconds: {{ .Values.probes.readiness.periodSeconds }}
  timeoutSeconds: {{ .Values.probes.readiness.timeoutSeconds }}
  failureThreshold: {{ .Values.probes.readiness.failureThreshold }}
{{- end }}

{{- define "omnicanal.volumeMounts" -}}
- name: journeys
  mountPath: /app/journeys
  readOnly: true
- name: templates
  mountPath: /app/templates
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- end }}

{{- define "omnicanal.volumes" -}}
- name: journeys
  configMap:
    name: {{ include "omnicanal.journeysConfigMap" . }}
- name: templates
  configMap:
    name: {{ include "omnicanal.templatesConfigMap" . }}
- name: tmp
  emptyDir: {}
{{- end }}

{{/* Pod-level settings shared by both roles. */}}
{{- define "omnicanal.podCommon" -}}
automountServiceAccountToken: false
{{- if .Values.serviceAccountName }}
serviceAccountName: {{ .Values.serviceAccountName }}
{{- end }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
volumes:
  {{- include "omnicanal.volumes" . | nindent 2 }}
{{- end }}
