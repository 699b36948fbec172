{{/*
Names.
*/}}
{{- define "jalon.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "jalon.fullname" -}}
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

{{- define "jalon.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Standard labels (app.kubernetes.io/*). The component label tells the server
pods from the migration Job's.
*/}}
{{- define "jalon.labels" -}}
helm.sh/chart: {{ include "jalon.chart" . }}
{{ include "jalon.selectorLabels" . }}
app.kubernetes.io/version: {{ include "jalon.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: jalon
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "jalon.selectorLabels" -}}
app.kubernetes.io/name: {{ include "jalon.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The server pods only (not the migration Job): Service, Deployment, PDB. */}}
{{- define "jalon.serverSelectorLabels" -}}
{{ include "jalon.selectorLabels" . }}
app.kubernetes.io/component: server
{{- end }}

{{- define "jalon.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "jalon.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image.
*/}}
{{- define "jalon.imageTag" -}}
{{- .Values.image.tag | default .Chart.AppVersion | toString }}
{{- end }}

{{- define "jalon.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "jalon.imageTag" .) }}
{{- end }}
{{- end }}

{{/*
Database URL: the Secret and key that hold it.
*/}}
{{- define "jalon.databaseSecretName" -}}
{{- if .Values.database.existingSecret }}
{{- .Values.database.existingSecret }}
{{- else }}
{{- printf "%s-database" (include "jalon.fullname" .) }}
{{- end }}
{{- end }}

{{- define "jalon.databaseSecretKey" -}}
{{- if .Values.database.existingSecret }}
{{- .Values.database.existingSecretKey }}
{{- else }}
{{- "url" }}
{{- end }}
{{- end }}

{{/* The env entry that gives the container the database URL, from the Secret. */}}
{{- define "jalon.databaseUrlEnv" -}}
- name: JALON__DATABASE__URL
  valueFrom:
    secretKeyRef:
      name: {{ include "jalon.databaseSecretName" . }}
      key: {{ include "jalon.databaseSecretKey" . }}
{{- end }}

{{/*
JWT keys: "jwks" or "publicKey", and the volume source they come from.
*/}}
{{- define "jalon.keyKind" -}}
{{- $a := .Values.auth }}
{{- if or $a.jwks.existingSecret $a.jwks.existingConfigMap }}jwks{{ else if or $a.publicKey.existingSecret $a.publicKey.existingConfigMap }}publicKey{{ end }}
{{- end }}

{{- define "jalon.keyFile" -}}
{{- if eq (include "jalon.keyKind" .) "jwks" }}
{{- printf "%s/jwks.json" (trimSuffix "/" .Values.auth.mountPath) }}
{{- else }}
{{- printf "%s/public.pem" (trimSuffix "/" .Values.auth.mountPath) }}
{{- end }}
{{- end }}

{{- define "jalon.keyVolume" -}}
{{- $kind := include "jalon.keyKind" . }}
{{- if $kind }}
{{- $src := get .Values.auth $kind }}
{{- $file := ternary "jwks.json" "public.pem" (eq $kind "jwks") }}
- name: jwt-keys
{{- if $src.existingSecret }}
  secret:
    secretName: {{ $src.existingSecret }}
    defaultMode: 0444
    items:
      - key: {{ $src.key }}
        path: {{ $file }}
{{- else }}
  configMap:
    name: {{ $src.existingConfigMap }}
    defaultMode: 0444
    items:
      - key: {{ $src.key }}
        path: {{ $file }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Termination grace period: server.drainTimeoutSecs + preStopSleepSeconds + 10
unless set, and then it must be above drain + preStop.
*/}}
{{- define "jalon.terminationGracePeriodSeconds" -}}
{{- $drain := int .Values.server.drainTimeoutSecs }}
{{- $preStop := int (default 0 .Values.preStopSleepSeconds) }}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- add $drain $preStop 10 }}
{{- else }}
{{- $grace := int .Values.terminationGracePeriodSeconds }}
{{- if le $grace (add $drain $preStop) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be above server.drainTimeoutSecs + preStopSleepSeconds (%d + %d): Kubernetes would kill calls that the server is still draining" $grace $drain $preStop) }}
{{- end }}
{{- $grace }}
{{- end }}
{{- end }}

{{/*
Checks that cross several values (values.schema.json checks each one). Called
by the Deployment and the migration Job, so nothing renders without them.
*/}}
{{- define "jalon.validate" -}}
{{- $db := .Values.database }}
{{- if and $db.existingSecret $db.url }}
{{- fail "set database.existingSecret or database.url, not both" }}
{{- end }}
{{- if not (or $db.existingSecret $db.url) }}
{{- fail "no database: set database.existingSecret (a Secret holding the PostgreSQL URL under database.existingSecretKey) or database.url. The chart runs Jalon on PostgreSQL only." }}
{{- end }}
{{- if and $db.url (not (regexMatch "^postgres(ql)?://" $db.url)) }}
{{- fail "database.url must be a postgres:// URL: SQLite is for a single local process, never for the chart" }}
{{- end }}
{{- if and $db.existingSecret (not $db.existingSecretKey) }}
{{- fail "database.existingSecretKey must name the key of database.existingSecret that holds the URL" }}
{{- end }}
{{- $a := .Values.auth }}
{{- $sources := 0 }}
{{- range (list $a.jwks.existingSecret $a.jwks.existingConfigMap $a.publicKey.existingSecret $a.publicKey.existingConfigMap) }}
{{- if . }}{{ $sources = add1 $sources }}{{ end }}
{{- end }}
{{- if eq $sources 0 }}
{{- fail "no JWT key: set one of auth.jwks.existingSecret, auth.jwks.existingConfigMap, auth.publicKey.existingSecret or auth.publicKey.existingConfigMap. Production has no development mode." }}
{{- end }}
{{- if gt $sources 1 }}
{{- fail "set only one JWT key source among auth.jwks.existingSecret, auth.jwks.existingConfigMap, auth.publicKey.existingSecret and auth.publicKey.existingConfigMap (Jalon refuses both a PEM key and a JWKS)" }}
{{- end }}
{{- if not $a.issuer }}
{{- fail "auth.issuer is required: the `iss` of your identity provider's tokens" }}
{{- end }}
{{- if not $a.audience }}
{{- fail "auth.audience is required: the `aud` of the tokens meant for Jalon" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail "autoscaling.minReplicas must not be above autoscaling.maxReplicas" }}
{{- end }}
{{- if and .Values.metrics.enabled (eq (int .Values.metrics.port) (int .Values.server.port)) }}
{{- fail "metrics.port must differ from server.port: the metrics have a port of their own" }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.enabled) }}
{{- fail "metrics.serviceMonitor.enabled needs metrics.enabled" }}
{{- end }}
{{- $_ := include "jalon.terminationGracePeriodSeconds" . }}
{{- end }}

{{/*
The pod and container security settings, fixed (only the ids are values).
*/}}
{{- define "jalon.podSecurityContext" -}}
runAsNonRoot: true
{{- with .Values.securityContext }}
{{- if not (kindIs "invalid" .runAsUser) }}
runAsUser: {{ .runAsUser }}
{{- end }}
{{- if not (kindIs "invalid" .runAsGroup) }}
runAsGroup: {{ .runAsGroup }}
{{- end }}
{{- if not (kindIs "invalid" .fsGroup) }}
fsGroup: {{ .fsGroup }}
{{- end }}
{{- end }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "jalon.containerSecurityContext" -}}
runAsNonRoot: true
{{- with .Values.securityContext }}
{{- if not (kindIs "invalid" .runAsUser) }}
runAsUser: {{ .runAsUser }}
{{- end }}
{{- if not (kindIs "invalid" .runAsGroup) }}
runAsGroup: {{ .runAsGroup }}
{{- end }}
{{- end }}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* A list of strings as the TOML-style array the service parses from env. */}}
{{- define "jalon.envList" -}}
{{- $items := list }}
{{- range . }}{{ $items = append $items (toString .) }}{{ end }}
{{- toJson $items }}
{{- end }}
