{{/*
Chart name, truncated to the 63 characters a DNS label allows.
*/}}
{{- define "pg-tenant-proxy.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name. If the release name already contains the chart name it is used as is.
*/}}
{{- define "pg-tenant-proxy.fullname" -}}
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

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "pg-tenant-proxy.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels.
*/}}
{{- define "pg-tenant-proxy.labels" -}}
helm.sh/chart: {{ include "pg-tenant-proxy.chart" . }}
{{ include "pg-tenant-proxy.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Selector labels (immutable on a Deployment: keep them minimal).
*/}}
{{- define "pg-tenant-proxy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pg-tenant-proxy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Service account name.
*/}}
{{- define "pg-tenant-proxy.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "pg-tenant-proxy.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Container image reference; the tag defaults to the chart's appVersion.
*/}}
{{- define "pg-tenant-proxy.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- end }}

{{/*
TLS Secret name: tls.secretName, or "<fullname>-tls".
*/}}
{{- define "pg-tenant-proxy.tlsSecretName" -}}
{{- .Values.tls.secretName | default (printf "%s-tls" (include "pg-tenant-proxy.fullname" .)) }}
{{- end }}

{{/*
The proxy's config file: .Values.config, plus listen.tls pointing at the mounted TLS Secret when tls.enabled
(a listen.tls.min_version given in config is kept). test/packaging/helm-chart.test.ts validates the result
against the proxy's config schema.
*/}}
{{- define "pg-tenant-proxy.config" -}}
{{- $config := deepCopy .Values.config }}
{{- if .Values.tls.enabled }}
{{- $files := dict "cert_file" (printf "%s/tls.crt" .Values.tls.mountPath) "key_file" (printf "%s/tls.key" .Values.tls.mountPath) }}
{{- $_ := set $config.listen "tls" (merge $files (default dict $config.listen.tls)) }}
{{- end }}
{{- toYaml $config }}
{{- end }}
