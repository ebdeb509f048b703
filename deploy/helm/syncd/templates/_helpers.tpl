{{/*
The chart's name, or nameOverride.
*/}}
{{- define "syncd.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
A fully qualified name: fullnameOverride, else "<release>-<name>", or just the release name when it
already contains the chart name. Truncated to 63 characters (DNS label limit).
*/}}
{{- define "syncd.fullname" -}}
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
{{- define "syncd.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every resource.
*/}}
{{- define "syncd.labels" -}}
helm.sh/chart: {{ include "syncd.chart" . }}
{{ include "syncd.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels: stable for the life of a release (a Deployment's selector cannot change).
*/}}
{{- define "syncd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "syncd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The service account the pods run as.
*/}}
{{- define "syncd.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "syncd.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The Secret holding the DSN and the Odoo credential: an existing one, or the chart's own.
*/}}
{{- define "syncd.secretName" -}}
{{- if .Values.secret.existingSecret }}
{{- .Values.secret.existingSecret }}
{{- else }}
{{- include "syncd.fullname" . }}
{{- end }}
{{- end }}

{{/*
The key in that Secret of the Odoo credential chosen by secret.odooAuth.
*/}}
{{- define "syncd.odooSecretKey" -}}
{{- if eq .Values.secret.odooAuth "password" }}
{{- .Values.secret.keys.odooPassword }}
{{- else }}
{{- .Values.secret.keys.odooApiKey }}
{{- end }}
{{- end }}

{{/*
"true" when the pod mounts the webhook secret: secret.webhooks in mode deployment (a `--once` run of
mode cronjob serves no HTTP, so it gets no webhook secret); else "".
*/}}
{{- define "syncd.webhooks" -}}
{{- if and .Values.secret.webhooks (eq .Values.mode "deployment") }}true{{ end }}
{{- end }}

{{/*
The image reference: repository, then @digest if set, else :tag (default: the chart's appVersion).
*/}}
{{- define "syncd.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/*
[http] listen inside the pod: every interface, on http.port ("[::]:9187" style for an IPv6 host).
*/}}
{{- define "syncd.listen" -}}
{{- if contains ":" .Values.http.host }}
{{- printf "[%s]:%d" .Values.http.host (int .Values.http.port) }}
{{- else }}
{{- printf "%s:%d" .Values.http.host (int .Values.http.port) }}
{{- end }}
{{- end }}

{{/*
Where the Secret's files are mounted; syncd reads them through the *_file config keys.
*/}}
{{- define "syncd.secretDir" -}}
/run/secrets/syncd
{{- end }}

{{/*
The pod template shared by the Deployment (the daemon) and the CronJob (`syncd run --once`).
Called with (dict "root" $ "once" true|false).
*/}}
{{- define "syncd.podTemplate" -}}
{{- $root := .root }}
{{- $values := $root.Values -}}
metadata:
  annotations:
    # A changed config or chart-made Secret rolls the pods (syncd reads both once, at start).
    checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
    {{- if not $values.secret.existingSecret }}
    checksum/secret: {{ include (print $root.Template.BasePath "/secret.yaml") $root | sha256sum }}
    {{- end }}
    {{- with $values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  labels:
    {{- include "syncd.labels" $root | nindent 4 }}
    {{- with $values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "syncd.serviceAccountName" $root }}
  automountServiceAccountToken: {{ $values.serviceAccount.automountServiceAccountToken }}
  {{- with $values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- if .once }}
  restartPolicy: Never
  {{- end }}
  # Above daemon.shutdownGraceSeconds, so that syncd can finish or give back in-flight work on SIGTERM.
  terminationGracePeriodSeconds: {{ add (int $values.daemon.shutdownGraceSeconds) 15 }}
  {{- with $values.podSecurityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: syncd
      image: {{ include "syncd.image" $root | quote }}
      imagePullPolicy: {{ $values.image.pullPolicy }}
      args:
        - run
        {{- if .once }}
        - --once
        {{- end }}
        - --config
        - /etc/syncd/config.toml
        {{- if $values.migrate }}
        - --migrate
        {{- end }}
        {{- range $values.extraArgs }}
        - {{ . | quote }}
        {{- end }}
      env:
        # These win over config.toml: they hold what the pod needs to be true.
        - name: SYNCD_HTTP__ENABLED
          value: "true"
        - name: SYNCD_HTTP__LISTEN
          value: {{ include "syncd.listen" $root | quote }}
        - name: SYNCD_DAEMON__SHUTDOWN_GRACE_SECONDS
          value: {{ $values.daemon.shutdownGraceSeconds | int | quote }}
        - name: SYNCD_DAEMON__INSTANCE_ID
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        - name: SYNCD_DATABASE__DSN_FILE
          value: {{ include "syncd.secretDir" $root }}/dsn
        {{- if eq $values.secret.odooAuth "password" }}
        - name: SYNCD_ODOO__PASSWORD_FILE
          value: {{ include "syncd.secretDir" $root }}/odoo-password
        {{- else }}
        - name: SYNCD_ODOO__API_KEY_FILE
          value: {{ include "syncd.secretDir" $root }}/odoo-api-key
        {{- end }}
        {{- if include "syncd.webhooks" $root }}
        - name: SYNCD_HTTP__WEBHOOK_SECRET_FILE
          value: {{ include "syncd.secretDir" $root }}/webhook-secret
        {{- end }}
        {{- with $values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with $values.extraEnvFrom }}
      envFrom:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      ports:
        - name: http
          containerPort: {{ $values.http.port }}
          protocol: TCP
      {{- if not .once }}
      {{- with $values.startupProbe }}
      startupProbe:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $values.livenessProbe }}
      livenessProbe:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $values.readinessProbe }}
      readinessProbe:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- end }}
      {{- with $values.securityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $values.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumeMounts:
        - name: config
          mountPath: /etc/syncd
          readOnly: true
        - name: secrets
          mountPath: {{ include "syncd.secretDir" $root }}
          readOnly: true
        # The root filesystem is read-only; Python and libraries may still want a temp dir.
        - name: tmp
          mountPath: /tmp
        {{- with $values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "syncd.fullname" $root }}
    - name: secrets
      secret:
        secretName: {{ include "syncd.secretName" $root }}
        defaultMode: 0444
        # Only the keys syncd uses, under fixed file names; a missing key stops the pod from starting
        # with an event that names it.
        items:
          - key: {{ $values.secret.keys.dsn | quote }}
            path: dsn
          - key: {{ include "syncd.odooSecretKey" $root | quote }}
            path: {{ if eq $values.secret.odooAuth "password" }}odoo-password{{ else }}odoo-api-key{{ end }}
          {{- if include "syncd.webhooks" $root }}
          - key: {{ $values.secret.keys.webhookSecret | quote }}
            path: webhook-secret
          {{- end }}
    - name: tmp
      emptyDir:
        sizeLimit: {{ $values.tmpSizeLimit }}
    {{- with $values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if not .once }}
  {{- with $values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- tpl (toYaml .) $root | nindent 4 }}
  {{- end }}
  {{- end }}
{{- end }}
