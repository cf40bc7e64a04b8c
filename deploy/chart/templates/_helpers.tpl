{{/* The Secret the agents read their repository from. */}}
{{- define "cairn.secretName" -}}
{{- .Values.repository.existingSecret | default "cairn-repository" -}}
{{- end -}}

{{/* A repository in a local directory, as a path ("" for s3:). */}}
{{- define "cairn.localRepository" -}}
{{- $loc := .Values.repository.location -}}
{{- if and (not .Values.repository.existingSecret) (or (hasPrefix "/" $loc) (hasPrefix "local:/" $loc)) -}}
{{- trimPrefix "local:" $loc -}}
{{- end -}}
{{- end -}}
