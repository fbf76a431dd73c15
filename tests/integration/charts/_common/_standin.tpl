{{/*
Shared by every stand-in chart (copied into templates/ at package time by tests/integration/addons/charts.py).
standin.operator: the operator Deployment the role waits on (kwok makes its pod Ready) and a ConfigMap holding
the values Helm received, so tests can check what the role passed.
Args: root (the chart's .), name (Deployment name), image (container image).
*/}}
{{- define "standin.operator" -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .name }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    app.kubernetes.io/name: {{ .name }}
    app.kubernetes.io/instance: {{ .root.Release.Name }}
    helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
spec:
  replicas: {{ .replicas | default 1 }}
  selector:
    matchLabels:
      app.kubernetes.io/name: {{ .name }}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: {{ .name }}
      annotations:
        llmops.io/values-checksum: {{ toYaml .root.Values | sha256sum | trunc 16 }}
    spec:
      containers:
        - name: operator
          image: {{ .image | quote }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .root.Release.Name }}-standin-values
  namespace: {{ .root.Release.Namespace }}
data:
  chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | quote }}
  values.yaml: |
{{ toYaml .root.Values | indent 4 }}
{{- end -}}

{{/* CRDs a chart version renders from templates/ (files/crds/, filled at package time). */}}
{{- define "standin.templatedCrds" -}}
{{- range $path, $_ := .Files.Glob "files/crds/*.yaml" }}
---
{{ $.Files.Get $path }}
{{- end }}
{{- end -}}
