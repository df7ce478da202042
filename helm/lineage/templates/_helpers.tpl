{{- define "lineage.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "lineage.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "lineage.labels" -}}
{{ include "lineage.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "lineage.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "lineage.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "lineage.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Where the pod finds the plugin. */}}
{{- define "lineage.pluginPath" -}}
/plugin/plugin.wasm
{{- end -}}

{{/* Kafka, S3 and logging settings shared by `run` and `generate`. */}}
{{- define "lineage.kafkaEnv" -}}
- name: KAFKA_BOOTSTRAP_SERVERS
  value: {{ include "lineage.bootstrapServers" . | quote }}
- name: KAFKA_TOPIC
  value: {{ .Values.kafka.topic | quote }}
- name: KAFKA_SECURITY_PROTOCOL
  value: {{ .Values.kafka.securityProtocol | quote }}
{{- with .Values.kafka.saslMechanism }}
- name: KAFKA_SASL_MECHANISM
  value: {{ . | quote }}
{{- end }}
{{- with .Values.kafka.properties }}
- name: KAFKA_PROPERTIES
  value: {{ include "lineage.properties" $ | quote }}
{{- end }}
- name: LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
{{- end -}}

{{- define "lineage.properties" -}}
{{- $pairs := list -}}
{{- range $k, $v := .Values.kafka.properties -}}
{{- $pairs = append $pairs (printf "%s=%v" $k $v) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}

{{/* S3 addressing and, where given, static credentials. */}}
{{- define "lineage.s3Env" -}}
{{- with include "lineage.s3Endpoint" . }}
- name: AWS_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
- name: AWS_REGION
  value: {{ .Values.s3.region | quote }}
{{- if .Values.s3.virtualHostedStyle }}
- name: AWS_VIRTUAL_HOSTED_STYLE_REQUEST
  value: "true"
{{- end }}
{{- with include "lineage.credentialsSecret" . }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: AWS_ACCESS_KEY_ID
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: AWS_SECRET_ACCESS_KEY
{{- end }}
{{- end -}}

{{/* A duration such as 30s, 2m or 1h in whole seconds. */}}
{{- define "lineage.seconds" -}}
{{- $d := toString . -}}
{{- if hasSuffix "ms" $d -}}{{- div (trimSuffix "ms" $d | int) 1000 -}}
{{- else if hasSuffix "s" $d -}}{{- trimSuffix "s" $d | int -}}
{{- else if hasSuffix "m" $d -}}{{- mul (trimSuffix "m" $d | int) 60 -}}
{{- else if hasSuffix "h" $d -}}{{- mul (trimSuffix "h" $d | int) 3600 -}}
{{- else -}}{{- fail (printf "shutdownTimeout %q: use a number with s, m or h" $d) -}}
{{- end -}}
{{- end -}}

{{/* The in-cluster parts of values-local.yaml win over the settings. */}}
{{- define "lineage.bootstrapServers" -}}
{{- if .Values.local.kafka.enabled -}}
{{- printf "%s-kafka:9092" .Release.Name -}}
{{- else -}}
{{- .Values.kafka.bootstrapServers -}}
{{- end -}}
{{- end -}}

{{- define "lineage.s3Endpoint" -}}
{{- if .Values.local.minio.enabled -}}
{{- printf "http://%s-minio:9000" .Release.Name -}}
{{- else -}}
{{- .Values.s3.endpoint -}}
{{- end -}}
{{- end -}}

{{- define "lineage.credentialsSecret" -}}
{{- if .Values.local.minio.enabled -}}
{{- printf "%s-minio" .Release.Name -}}
{{- else -}}
{{- .Values.s3.credentialsSecret -}}
{{- end -}}
{{- end -}}
