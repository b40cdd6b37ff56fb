{{/* Names and labels shared by every object of the chart. */}}
{{- define "kubejit.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kubejit.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "kubejit.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "kubejit.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "kubejit.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubejit.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kubejit.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "kubejit.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "kubejit.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kubejit.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "kubejit.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The broker's config.yaml: the user's settings with the keys the chart owns laid over them. */}}
{{- define "kubejit.config" -}}
{{- $config := deepCopy .Values.config }}
{{- if not (dig "broker" "publicUrl" "" $config) }}{{- $_ := unset (default (dict) $config.broker) "publicUrl" }}{{- end }}
{{- $broker := dict "host" "0.0.0.0" "port" (int .Values.containerPort) }}
{{- if .Values.brokerTls.existingSecret }}
{{- $_ := set $broker "tls" (dict "certFile" "/etc/kubejit/tls/tls.crt" "keyFile" "/etc/kubejit/tls/tls.key") }}
{{- else }}
{{- /* TLS ends at the Ingress: plain HTTP inside the cluster, behind the NetworkPolicy. */}}
{{- $_ := set $broker "allowPlainHttp" true }}
{{- end }}
{{- if .Values.serviceMonitor.enabled }}
{{- $_ := set $broker "exposeMetrics" true }}
{{- end }}
{{- $owned := dict "broker" $broker "dataDir" "/var/lib/kubejit" "policyFile" "/etc/kubejit/policy/policy.yaml" "brokerNamespace" .Release.Namespace }}
{{- mustMergeOverwrite $config $owned | toYaml }}
{{- end }}

{{/* Pod Security Standards "restricted", plus a read-only root filesystem. */}}
{{- define "kubejit.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
{{- end }}
