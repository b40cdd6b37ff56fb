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
{{- if include "kubejit.jwtMode" . }}
{{- $jwt := .Values.jwtIssuer }}
{{- $issuer := dict "tokenLifetimeMinutes" $jwt.tokenLifetimeMinutes "usernamePrefix" $jwt.usernamePrefix "rotateAfterHours" $jwt.rotateAfterHours }}
{{- if $jwt.keys.persistentVolumeClaim }}
{{- $_ := set $issuer "keyDir" "/var/lib/kubejit-jwt/keys" }}
{{- end }}
{{- if or $jwt.certificateAuthority.existingSecret $jwt.certificateAuthority.existingConfigMap }}
{{- $_ := set $issuer "certificateAuthorityFile" (printf "/etc/kubejit/jwt-ca/%s" $jwt.certificateAuthority.key) }}
{{- end }}
{{- $_ := set $owned "jwtIssuer" $issuer }}
{{- end }}
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

{{/* "true" when the chart renders the broker's RBAC (rbac.create); fails on values it cannot serve. */}}
{{- define "kubejit.rbacEnabled" -}}
{{- if .Values.rbac.create }}
{{- if not (and .Values.serviceAccount.create (eq .Values.serviceAccount.name "kubejit-broker")) }}
{{- fail "rbac.create binds the ServiceAccount kubejit-broker (as deploy/rbac.yaml and its admission policy do): set serviceAccount.create=true and serviceAccount.name=kubejit-broker, or rbac.create=false and apply your own RBAC" }}
{{- end }}
{{- $grant := dig "grantNamespace" "" .Values.config }}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$" (toString $grant)) }}
{{- fail (printf "rbac.create needs config.grantNamespace, a DNS label (got %q): the namespace where the broker creates one ServiceAccount per grant" (toString $grant)) }}
{{- end }}
{{- if eq $grant .Release.Namespace }}
{{- fail (printf "config.grantNamespace is the release namespace %q: keep the per-grant accounts apart from the broker's own (another namespace)" $grant) }}
{{- end -}}
true
{{- end }}
{{- end }}

{{/* "true" when a cluster of config.clusters is in credentialMode jwt; fails on values it cannot serve. */}}
{{- define "kubejit.jwtMode" -}}
{{- $jwt := false }}
{{- range .Values.config.clusters }}
{{- if and (kindIs "map" .) (eq (toString (dig "credentialMode" "" .)) "jwt") }}{{- $jwt = true }}{{- end }}
{{- end }}
{{- if $jwt }}
{{- if not .Values.brokerTls.existingSecret }}
{{- fail "a cluster is in credentialMode jwt: set brokerTls.existingSecret (a kubernetes.io/tls Secret), since API servers fetch the broker's signing keys over HTTPS only, from the broker itself (docs/jwt-mode.md)" }}
{{- end }}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.jwtIssuer.keys.persistentVolumeClaim) }}
{{- fail "jwt mode with replicaCount > 1 needs jwtIssuer.keys.persistentVolumeClaim (a ReadWriteMany claim): every replica must sign with, and publish, the same keys" }}
{{- end }}
{{- if and .Values.jwtIssuer.certificateAuthority.existingSecret .Values.jwtIssuer.certificateAuthority.existingConfigMap }}
{{- fail "jwtIssuer.certificateAuthority: set existingSecret or existingConfigMap, not both" }}
{{- end -}}
true
{{- end }}
{{- end }}

{{/* The credential mode of the cluster the broker runs in (its `inCluster: true` entry): the RBAC
rbac.create renders is that mode's. */}}
{{- define "kubejit.inClusterMode" -}}
{{- $mode := "serviceAccount" }}
{{- range .Values.config.clusters }}
{{- if and (kindIs "map" .) (dig "inCluster" false .) (eq (toString (dig "credentialMode" "" .)) "jwt") }}{{- $mode = "jwt" }}{{- end }}
{{- end }}
{{- $mode -}}
{{- end }}
