{{/* The chart's name, at most 63 characters (a DNS label). */}}
{{- define "jwt-authz.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The objects' name: the release name, with the chart's name unless it already holds it. */}}
{{- define "jwt-authz.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels the pods are selected by; never change them in an upgrade. */}}
{{- define "jwt-authz.selectorLabels" -}}
app.kubernetes.io/name: {{ include "jwt-authz.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "jwt-authz.labels" -}}
{{ include "jwt-authz.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: jwt-authz
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* repository:tag, or repository@sha256:... when a digest is set. */}}
{{- define "jwt-authz.image" -}}
{{- $img := .Values.image -}}
{{- if $img.digest -}}
{{- $d := $img.digest | toString -}}
{{- if not (hasPrefix "sha256:" $d) -}}{{- $d = printf "sha256:%s" $d -}}{{- end -}}
{{- if not (regexMatch "^sha256:[0-9a-f]{64}$" $d) -}}
{{- fail (printf "image.digest: %q is not sha256:<64 lower-case hex digits>" $img.digest) -}}
{{- end -}}
{{- printf "%s@%s" $img.repository $d -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (toString (default .Chart.AppVersion $img.tag)) -}}
{{- end -}}
{{- end -}}

{{/*
GOMEMLIMIT from a memory quantity: <integer><suffix> with a binary (Ki Mi Gi
Ti) or decimal (k M G T) suffix or none (bytes), times goMemLimitPercent,
in whole MiB. Called with (list quantity percent).
*/}}
{{- define "jwt-authz.gomemlimit" -}}
{{- $q := index . 0 | toString -}}
{{- $pct := index . 1 | int64 -}}
{{- $units := dict "" 1 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 -}}
{{- $num := regexFind "^[0-9]+" $q -}}
{{- $suffix := trimPrefix $num $q -}}
{{- if or (eq $num "") (not (hasKey $units $suffix)) -}}
{{- fail (printf "resources.limits.memory: %q: want an integer with an optional Ki, Mi, Gi, Ti, k, M, G or T suffix (or set goMemLimitPercent: 0)" $q) -}}
{{- end -}}
{{- if or (le $pct 0) (gt $pct 100) -}}
{{- fail (printf "goMemLimitPercent: %d: want 1 to 100, or 0 for no GOMEMLIMIT" $pct) -}}
{{- end -}}
{{- $bytes := mul (int64 $num) (int64 (get $units $suffix)) -}}
{{- $mib := div (div (mul $bytes $pct) 100) 1048576 -}}
{{- if lt $mib 1 -}}
{{- fail (printf "resources.limits.memory: %q is too small for a GOMEMLIMIT" $q) -}}
{{- end -}}
{{- printf "%dMiB" $mib -}}
{{- end -}}

{{/* Whether the gRPC listener speaks TLS (then the kubelet's gRPC probe cannot be used). */}}
{{- define "jwt-authz.tls" -}}
{{- with .Values.config.listen -}}{{- with .tls -}}{{- if .cert_file -}}true{{- end -}}{{- end -}}{{- end -}}
{{- end -}}

{{/*
The config file: .Values.config with listen.grpc/http from .Values.ports
and, with cache.enabled, each provider's unset jwks.cache_file in the cache volume.
*/}}
{{- define "jwt-authz.config" -}}
{{- $cfg := deepCopy .Values.config -}}
{{- $listen := default (dict) $cfg.listen -}}
{{- $_ := set $listen "grpc" (printf "0.0.0.0:%d" (int .Values.ports.grpc)) -}}
{{- $_ = set $listen "http" (printf "0.0.0.0:%d" (int .Values.ports.http)) -}}
{{- $_ = set $cfg "listen" $listen -}}
{{- if .Values.cache.enabled -}}
{{- range $p := $cfg.providers -}}
{{- $jwks := default (dict) $p.jwks -}}
{{- if not $jwks.cache_file -}}
{{- $_ := set $jwks "cache_file" (printf "%s/%s.json" $.Values.cache.mountPath $p.name) -}}
{{- end -}}
{{- $_ := set $p "jwks" $jwks -}}
{{- end -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}
