{{/* Names and labels. */}}
{{- define "strait.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "strait.fullname" -}}
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

{{- define "strait.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{ include "strait.selector" . }}
{{- end -}}

{{/* Selector labels; the caller sets .component with "strait.ctx". */}}
{{- define "strait.selector" -}}
app.kubernetes.io/name: {{ include "strait.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "strait.cpSelector" -}}
{{ include "strait.selector" . }}
app.kubernetes.io/component: control-plane
{{- end -}}

{{- define "strait.dpSelector" -}}
{{ include "strait.selector" . }}
app.kubernetes.io/component: data-plane
{{- end -}}

{{- define "strait.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Fixed paths in the pod. */}}
{{- define "strait.prefix" -}}/var/lib/strait{{- end -}}
{{- define "strait.clusterDir" -}}/etc/strait/cluster{{- end -}}
{{- define "strait.adminTlsDir" -}}/etc/strait/admin-tls{{- end -}}

{{/* The Secret with the cluster pair (and ca.crt with pki). */}}
{{- define "strait.clusterSecret" -}}
{{- if eq .Values.cluster.mtls "pki" -}}
{{- printf "%s-cluster-cert" (include "strait.fullname" .) -}}
{{- else -}}
{{- required "cluster.secretName is required with cluster.mtls = shared: make the pair with `strait-cp cluster gen_cert` and `kubectl create secret tls` (docs/deploy-helm.md)" .Values.cluster.secretName -}}
{{- end -}}
{{- end -}}

{{- define "strait.adminTokenSecret" -}}
{{- default (printf "%s-admin-token" (include "strait.fullname" .)) .Values.controlPlane.admin.token.existingSecret -}}
{{- end -}}

{{- define "strait.pgPasswordSecret" -}}
{{- default (printf "%s-postgres" (include "strait.fullname" .)) .Values.postgres.password.existingSecret -}}
{{- end -}}

{{- define "strait.pgHost" -}}
{{- if .Values.postgres.bundled.enabled -}}
{{- printf "%s-postgres" (include "strait.fullname" .) -}}
{{- else -}}
{{- required "postgres.host is required with controlPlane.database = postgres (or set postgres.bundled.enabled)" .Values.postgres.host -}}
{{- end -}}
{{- end -}}

{{/* Cluster keys common to both planes. */}}
{{- define "strait.clusterConf" -}}
{{- $c := dict "cluster_mtls" .Values.cluster.mtls -}}
{{- $_ := set $c "cluster_cert" (printf "%s/tls.crt" (include "strait.clusterDir" .)) -}}
{{- $_ := set $c "cluster_cert_key" (printf "%s/tls.key" (include "strait.clusterDir" .)) -}}
{{- if eq .Values.cluster.mtls "pki" -}}
{{- $_ := set $c "cluster_ca_cert" (printf "%s/ca.crt" (include "strait.clusterDir" .)) -}}
{{- end -}}
{{- toYaml $c -}}
{{- end -}}

{{/* Renders a key -> value map as STRAIT_<KEY> env entries (sorted; booleans as on/off). */}}
{{- define "strait.envFromMap" -}}
{{- range $k, $v := . }}
- name: {{ printf "STRAIT_%s" (upper $k) }}
  value: {{ if kindIs "bool" $v }}{{ ternary "on" "off" $v | quote }}{{ else if kindIs "float64" $v }}{{ $v | int64 | toString | quote }}{{ else }}{{ $v | toString | quote }}{{ end }}
{{- end }}
{{- end -}}

{{/*
The control plane's configuration: env, volume mounts and volumes. The CP Deployment
and every migration Job include these same helpers, so a Job always has the CP's
environment and certificates (Kong's charts#1209 cannot happen here).
*/}}
{{- define "strait.cpConf" -}}
{{- $v := .Values -}}
{{- $c := include "strait.clusterConf" . | fromYaml -}}
{{- $_ := set $c "prefix" (include "strait.prefix" .) -}}
{{- $_ := set $c "database" $v.controlPlane.database -}}
{{- $_ := set $c "cluster_listen" (printf "0.0.0.0:%d" (int $v.cluster.port)) -}}
{{- if $v.controlPlane.admin.tls.secretName -}}
{{- $_ := set $c "admin_listen" (printf "0.0.0.0:%d ssl" (int $v.controlPlane.admin.port)) -}}
{{- $_ := set $c "admin_ssl_cert" (printf "%s/tls.crt" (include "strait.adminTlsDir" .)) -}}
{{- $_ := set $c "admin_ssl_cert_key" (printf "%s/tls.key" (include "strait.adminTlsDir" .)) -}}
{{- else -}}
{{- $_ := set $c "admin_listen" (printf "0.0.0.0:%d" (int $v.controlPlane.admin.port)) -}}
{{- $_ := set $c "admin_allow_insecure" "on" -}}
{{- end -}}
{{- if eq $v.controlPlane.database "postgres" -}}
{{- $_ := set $c "pg_host" (include "strait.pgHost" .) -}}
{{- $_ := set $c "pg_port" (int $v.postgres.port) -}}
{{- $_ := set $c "pg_user" $v.postgres.user -}}
{{- $_ := set $c "pg_database" $v.postgres.database -}}
{{- $_ := set $c "pg_ssl" $v.postgres.ssl -}}
{{- end -}}
{{- toYaml (mergeOverwrite $c (deepCopy $v.controlPlane.config)) -}}
{{- end -}}

{{- define "strait.cpEnv" -}}
{{- $conf := include "strait.cpConf" . | fromYaml -}}
{{- include "strait.envFromMap" $conf }}
{{- if not (hasKey .Values.controlPlane.config "admin_token") }}
- name: STRAIT_ADMIN_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "strait.adminTokenSecret" . }}
      key: {{ .Values.controlPlane.admin.token.key }}
{{- end }}
{{- if and (eq .Values.controlPlane.database "postgres") (not (hasKey .Values.controlPlane.config "pg_password")) }}
- name: STRAIT_PG_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "strait.pgPasswordSecret" . }}
      key: {{ .Values.postgres.password.key }}
{{- end }}
{{- with .Values.controlPlane.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "strait.cpVolumeMounts" -}}
- name: prefix
  mountPath: {{ include "strait.prefix" . }}
- name: cluster-cert
  mountPath: {{ include "strait.clusterDir" . }}
  readOnly: true
{{- if .Values.controlPlane.admin.tls.secretName }}
- name: admin-tls
  mountPath: {{ include "strait.adminTlsDir" . }}
  readOnly: true
{{- end }}
{{- end -}}

{{- define "strait.cpVolumes" -}}
- name: prefix
  emptyDir: {}
- name: cluster-cert
  secret:
    secretName: {{ include "strait.clusterSecret" . }}
{{- if .Values.controlPlane.admin.tls.secretName }}
- name: admin-tls
  secret:
    secretName: {{ .Values.controlPlane.admin.tls.secretName }}
{{- end }}
{{- end -}}

{{/* The CP container, minus command and args (Deployment and Jobs share it). */}}
{{- define "strait.cpContainerBase" -}}
image: {{ include "strait.image" . }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
env:
  {{- include "strait.cpEnv" . | trim | nindent 2 }}
volumeMounts:
  {{- include "strait.cpVolumeMounts" . | nindent 2 }}
{{- end -}}

{{/* The pod-level parts shared by the CP Deployment and the migration Jobs. */}}
{{- define "strait.cpPodBase" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.controlPlane.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.controlPlane.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
  {{- include "strait.cpVolumes" . | nindent 2 }}
{{- end -}}

{{/* The data plane's configuration. */}}
{{- define "strait.dpConf" -}}
{{- $v := .Values -}}
{{- $c := include "strait.clusterConf" . | fromYaml -}}
{{- $_ := set $c "prefix" (include "strait.prefix" .) -}}
{{- $cp := $v.dataPlane.controlPlaneAddress -}}
{{- if not $cp -}}
{{- if $v.controlPlane.enabled -}}
{{- $cp = printf "%s-cluster.%s.svc:%d" (include "strait.fullname" .) .Release.Namespace (int $v.cluster.port) -}}
{{- else -}}
{{- fail "dataPlane.controlPlaneAddress is required when controlPlane.enabled is false: the CP's cluster address, host:port" -}}
{{- end -}}
{{- end -}}
{{- $_ := set $c "cluster_control_plane" $cp -}}
{{- if eq $v.cluster.mtls "pki" -}}
{{- $_ := set $c "cluster_server_name" $v.cluster.certManager.serverName -}}
{{- end -}}
{{- $_ := set $c "status_listen" (printf "0.0.0.0:%d" (int $v.dataPlane.statusPort)) -}}
{{- $_ := set $c "drain_timeout" (int $v.dataPlane.drainTimeout) -}}
{{- $l := list -}}
{{- range $v.dataPlane.streams -}}
{{- $l = append $l (printf "0.0.0.0:%d%s" (int .port) (ternary " ssl" "" (default false .ssl))) -}}
{{- end -}}
{{- $_ := set $c "stream_listen" (ternary (join ", " $l) "off" (gt (len $l) 0)) -}}
{{- toYaml (mergeOverwrite $c (deepCopy $v.dataPlane.config)) -}}
{{- end -}}
