{{/* The release's base name: <fullname>-routes and <fullname>-credentials are the proxies' objects. */}}
{{- define "llmpool.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "llmpool.labels" -}}
app.kubernetes.io/name: {{ .Values.nameOverride | default .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{- define "llmpool.selector" -}}
app.kubernetes.io/name: {{ .root.Values.nameOverride | default .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* An image reference: registry/name, then @digest or :tag. */}}
{{- define "llmpool.image" -}}
{{- $i := .root.Values.image -}}
{{- if $i.digest -}}
{{ $i.registry }}/{{ .name }}@{{ $i.digest }}
{{- else -}}
{{ $i.registry }}/{{ .name }}:{{ $i.tag | default .root.Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{/* The Secret and key holding the Redis URL, when there is one. */}}
{{- define "llmpool.redisSecret" -}}
{{- if eq .Values.redis.mode "bundled" -}}
{{ .Values.redis.bundled.existingSecret | default (printf "%s-redis" (include "llmpool.fullname" .)) }}
{{- else if and (eq .Values.redis.mode "external") .Values.redis.external.existingSecret -}}
{{ .Values.redis.external.existingSecret }}
{{- end -}}
{{- end -}}

{{- define "llmpool.redisSecretKey" -}}
{{- if eq .Values.redis.mode "bundled" -}}url{{- else -}}{{ .Values.redis.external.existingSecretKey }}{{- end -}}
{{- end -}}

{{/* Environment that points a process at Redis. */}}
{{- define "llmpool.redisEnv" -}}
{{- $secret := include "llmpool.redisSecret" . -}}
{{- if $secret }}
- name: LLMPOOL_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ include "llmpool.redisSecretKey" . }}
{{- else if and (eq .Values.redis.mode "external") .Values.redis.external.url }}
- name: LLMPOOL_REDIS_URL
  value: {{ .Values.redis.external.url | quote }}
{{- end }}
{{- if and (eq .Values.redis.mode "external") .Values.redis.external.cluster }}
- name: LLMPOOL_REDIS_CLUSTER
  value: "true"
{{- end }}
{{- if and (eq .Values.redis.mode "external") .Values.redis.external.caSecret }}
- name: LLMPOOL_REDIS_CA_FILE
  value: /etc/llmpool/redis-ca/ca.crt
{{- end }}
{{- end -}}

{{- define "llmpool.redisCaVolume" -}}
{{- if and (eq .Values.redis.mode "external") .Values.redis.external.caSecret }}
- name: redis-ca
  secret:
    secretName: {{ .Values.redis.external.caSecret }}
{{- end }}
{{- end -}}

{{- define "llmpool.redisCaMount" -}}
{{- if and (eq .Values.redis.mode "external") .Values.redis.external.caSecret }}
- name: redis-ca
  mountPath: /etc/llmpool/redis-ca
  readOnly: true
{{- end }}
{{- end -}}

{{/* Refuse settings that cannot work, with the reason. */}}
{{- define "llmpool.validate" -}}
{{- if and (eq .Values.redis.mode "none") (or (gt (int .Values.proxy.replicas) 1) .Values.proxy.hpa.enabled) -}}
{{- fail "proxy.replicas > 1 (or proxy.hpa.enabled) needs shared state: with redis.mode=none every replica would enforce limits and cooldowns on its own, so the pool would exceed its accounts' limits. Set redis.mode to bundled or external, or proxy.replicas to 1." -}}
{{- end -}}
{{- if and (eq .Values.redis.mode "external") (not (or .Values.redis.external.url .Values.redis.external.existingSecret)) -}}
{{- fail "redis.mode=external needs redis.external.url or redis.external.existingSecret" -}}
{{- end -}}
{{- $grace := include "llmpool.seconds" .Values.proxy.shutdownGrace | int -}}
{{- if le (int .Values.proxy.terminationGracePeriodSeconds) (add $grace (int .Values.proxy.preStopSeconds)) -}}
{{- fail (printf "proxy.terminationGracePeriodSeconds (%d) must exceed proxy.preStopSeconds + proxy.shutdownGrace (%d s), or streams are cut on rollout" (int .Values.proxy.terminationGracePeriodSeconds) (add $grace (int .Values.proxy.preStopSeconds))) -}}
{{- end -}}
{{- end -}}

{{/* Whole seconds of a duration like 30s, 2m or 1h. */}}
{{- define "llmpool.seconds" -}}
{{- $d := . | toString -}}
{{- if hasSuffix "h" $d -}}{{ mul (trimSuffix "h" $d | int) 3600 }}
{{- else if hasSuffix "m" $d -}}{{ mul (trimSuffix "m" $d | int) 60 }}
{{- else -}}{{ trimSuffix "s" $d | int }}
{{- end -}}
{{- end -}}
