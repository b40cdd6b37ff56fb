{{/* "true" when the values make sense together; fails the render otherwise. */}}
{{- define "kubejit-target.checked" -}}
{{- if eq .Values.brokerNamespace .Values.grantNamespace }}
{{- fail (printf "brokerNamespace and grantNamespace are both %q: keep the broker's own account apart from the per-grant accounts (two namespaces)" .Values.brokerNamespace) }}
{{- end -}}
true
{{- end }}
