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
Per-replica pool.size. With pool.totalBudget > 0: floor(totalBudget / (replicaCount + maxSurge)), surge pods
counted so a rollout stays within the budget; fails when a replica (or one of its workers) would get nothing.
Without it: config.pool.size as written.
*/}}
{{- define "pg-tenant-proxy.poolSize" -}}
{{- $total := int (.Values.pool.totalBudget | default 0) -}}
{{- if gt $total 0 -}}
{{- $replicas := int .Values.replicaCount -}}
{{- $surge := 0 -}}
{{- with .Values.strategy -}}{{- with .rollingUpdate -}}{{- with .maxSurge -}}
{{- if kindIs "string" . -}}
{{- fail (printf "pool.totalBudget needs strategy.rollingUpdate.maxSurge as a number of pods, not %q: the budget must count surge pods" .) -}}
{{- end -}}
{{- $surge = int . -}}
{{- end -}}{{- end -}}{{- end -}}
{{- $pods := add $replicas $surge -}}
{{- if lt (int $pods) 1 -}}{{- fail "replicaCount must be at least 1" -}}{{- end -}}
{{- $share := div $total $pods -}}
{{- if lt (int $share) 1 -}}
{{- fail (printf "pool.totalBudget %d cannot cover %d replicas + %d surge pods: each needs at least one backend connection; raise pool.totalBudget or lower replicaCount" $total $replicas $surge) -}}
{{- end -}}
{{- $workers := .Values.config.workers | default 1 -}}
{{- if and (not (kindIs "string" $workers)) (lt (int $share) (int $workers)) -}}
{{- fail (printf "pool.totalBudget %d gives each of %d pods %d backend connections, fewer than config.workers %d: every worker needs at least one; raise pool.totalBudget or lower config.workers" $total $pods $share (int $workers)) -}}
{{- end -}}
{{- $share -}}
{{- else -}}
{{- int .Values.config.pool.size -}}
{{- end -}}
{{- end }}

{{/*
TLS Secret name: tls.secretName, or "<fullname>-tls".
*/}}
{{- define "pg-tenant-proxy.tlsSecretName" -}}
{{- .Values.tls.secretName | default (printf "%s-tls" (include "pg-tenant-proxy.fullname" .)) }}
{{- end }}

{{/*
The proxy's config file: .Values.config, plus listen.tls pointing at the mounted TLS Secret when tls.enabled
(a listen.tls.min_version given in config is kept), and pool.size from pg-tenant-proxy.poolSize.
test/packaging/helm-chart.test.ts validates the result against the proxy's config schema.
*/}}
{{- define "pg-tenant-proxy.config" -}}
{{- $config := deepCopy .Values.config }}
{{- /* pool.size is the per-replica share of pool.totalBudget when that is set (pg-tenant-proxy.poolSize). */}}
{{- $_ := set $config.pool "size" (include "pg-tenant-proxy.poolSize" . | atoi) }}
{{- if .Values.tls.enabled }}
{{- $files := dict "cert_file" (printf "%s/tls.crt" .Values.tls.mountPath) "key_file" (printf "%s/tls.key" .Values.tls.mountPath) }}
{{- $_ := set $config.listen "tls" (merge $files (default dict $config.listen.tls)) }}
{{- end }}
{{- toYaml $config }}
{{- end }}
