{{/* Names and labels shared by every object of the release. */}}
{{- define "gpupolicy.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "gpupolicy.serviceAccountName" -}}
{{- default (include "gpupolicy.fullname" .) .Values.plugin.serviceAccount.name -}}
{{- end -}}

{{- define "gpupolicy.controllerServiceAccountName" -}}
{{- default (printf "%s-controller" (include "gpupolicy.fullname" .)) .Values.controller.serviceAccount.name -}}
{{- end -}}

{{- define "gpupolicy.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The labels that tell the plugin's pods from the controller's: selectorLabels plus the component. */}}
{{- define "gpupolicy.componentLabels" -}}
{{ include "gpupolicy.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "gpupolicy.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "gpupolicy.labels" -}}
{{ include "gpupolicy.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "gpupolicy.driverName" -}}
{{- required "driverName is required" .Values.driverName -}}
{{- end -}}
