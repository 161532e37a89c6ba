{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "channelmodel.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-qualified name; component suffixes below keep it at 48 characters. */}}
{{- define "channelmodel.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 48 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 48 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 48 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "channelmodel.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "channelmodel.labels" -}}
helm.sh/chart: {{ include "channelmodel.chart" . }}
app.kubernetes.io/name: {{ include "channelmodel.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: channelmodel
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* metadata.annotations of every object: commonAnnotations, then the object's own
     (which win); nothing when both are empty. Pass (dict "ctx" $ "extra" map). */}}
{{- define "channelmodel.annotations" -}}
{{- $all := merge (dict) (.extra | default dict) (.ctx.Values.commonAnnotations | default dict) -}}
{{- with $all }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: pass (dict "ctx" $ "component" "operator"). */}}
{{- define "channelmodel.selectorLabels" -}}
app.kubernetes.io/name: {{ include "channelmodel.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "channelmodel.componentLabels" -}}
{{ include "channelmodel.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "channelmodel.operatorName" -}}
{{- printf "%s-operator" (include "channelmodel.fullname" .) -}}
{{- end -}}

{{- define "channelmodel.serverName" -}}
{{- printf "%s-server" (include "channelmodel.fullname" .) -}}
{{- end -}}

{{- define "channelmodel.operatorServiceAccountName" -}}
{{- default (include "channelmodel.operatorName" .) .Values.operator.serviceAccount.name -}}
{{- end -}}

{{- define "channelmodel.trainerServiceAccountName" -}}
{{- default (printf "%s-trainer" (include "channelmodel.fullname" .)) .Values.trainer.serviceAccount.name -}}
{{- end -}}

{{- define "channelmodel.claimName" -}}
{{- default (printf "%s-models" (include "channelmodel.fullname" .)) .Values.store.pvc.existingClaim -}}
{{- end -}}

{{/* repository:tag, or repository@digest when a digest is set (tag then ignored). */}}
{{- define "channelmodel.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "channelmodel.trainerImage" -}}
{{- $variant := ternary "gpu" "cpu" .Values.trainer.gpu.enabled -}}
{{- if .Values.trainer.image.digest -}}
{{- printf "%s@%s" .Values.trainer.image.repository .Values.trainer.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.trainer.image.repository (default (printf "%s-%s" .Chart.AppVersion $variant) .Values.trainer.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Namespaces whose ChannelModels are watched in namespaced mode. */}}
{{- define "channelmodel.watchedNamespaces" -}}
{{- if .Values.watch.namespaces -}}
{{- join "," (uniq .Values.watch.namespaces) -}}
{{- else -}}
{{- .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{/* Namespaces where training Jobs run and so need the trainer ServiceAccount (comma list). */}}
{{- define "channelmodel.workloadNamespaces" -}}
{{- if .Values.watch.clusterWide -}}
{{- join "," (uniq (prepend .Values.watch.namespaces .Release.Namespace)) -}}
{{- else -}}
{{- include "channelmodel.watchedNamespaces" . -}}
{{- end -}}
{{- end -}}

{{- define "channelmodel.storeUri" -}}
{{- if eq .Values.store.type "s3" -}}
{{- $prefix := trimAll "/" .Values.store.s3.prefix -}}
{{- if $prefix -}}
{{- printf "s3://%s/%s" .Values.store.s3.bucket $prefix -}}
{{- else -}}
{{- printf "s3://%s" .Values.store.s3.bucket -}}
{{- end -}}
{{- else -}}
{{- printf "file://%s" .Values.store.pvc.path -}}
{{- end -}}
{{- end -}}

{{- define "channelmodel.publicBaseUrl" -}}
{{- if .Values.operator.publicBaseUrl -}}
{{- .Values.operator.publicBaseUrl | trimSuffix "/" -}}
{{- else if .Values.server.ingress.enabled -}}
{{- printf "%s://%s" (ternary "https" "http" .Values.server.ingress.tls.enabled) .Values.server.ingress.host -}}
{{- else -}}
{{- include "channelmodel.serverServiceUrl" . -}}
{{- end -}}
{{- end -}}

{{/* The model server's in-cluster URL. */}}
{{- define "channelmodel.serverServiceUrl" -}}
{{- $port := int .Values.server.service.port -}}
{{- printf "http://%s.%s.svc%s" (include "channelmodel.serverName" .) .Release.Namespace (ternary "" (printf ":%d" $port) (eq $port 80)) -}}
{{- end -}}

{{/* Namespace of the ChannelModels the compatibility API finds and creates. */}}
{{- define "channelmodel.compatNamespace" -}}
{{- default .Release.Namespace .Values.server.compat.namespace -}}
{{- end -}}

{{/* Where the compatibility API's bearer token is mounted (a directory: no subPath, so Secret updates reach it). */}}
{{- define "channelmodel.compatTokenDir" -}}
/var/run/secrets/channelmodel/compat
{{- end -}}

{{- define "channelmodel.compatTokenFile" -}}
{{- printf "%s/token" (include "channelmodel.compatTokenDir" .) -}}
{{- end -}}

{{/* The annotations a backend (backendAccess) may write: channelmodel/api/annotations.py. JSON list. */}}
{{- define "channelmodel.changeAnnotations" -}}
{{- list "ml.dukarun.io/inventory-changed-at" "ml.dukarun.io/inventory-change" "ml.dukarun.io/retrain-requested-at" | toJson -}}
{{- end -}}

{{/* Cluster-scoped, so unique per release and namespace. */}}
{{- define "channelmodel.backendPolicyName" -}}
{{- printf "%s-%s-backend-access" (include "channelmodel.fullname" .) .Release.Namespace -}}
{{- end -}}

{{/* RBAC subjects of backendAccess. */}}
{{- define "channelmodel.backendSubjects" -}}
{{- range .Values.backendAccess.serviceAccounts }}
- kind: ServiceAccount
  name: {{ .name }}
  namespace: {{ default $.Release.Namespace .namespace }}
{{- end }}
{{- range .Values.backendAccess.users }}
- kind: User
  apiGroup: rbac.authorization.k8s.io
  name: {{ . | quote }}
{{- end }}
{{- range .Values.backendAccess.groups }}
- kind: Group
  apiGroup: rbac.authorization.k8s.io
  name: {{ . | quote }}
{{- end }}
{{- end -}}

{{/* CEL: the request comes from one of backendAccess's identities. */}}
{{- define "channelmodel.backendIdentityExpression" -}}
{{- $users := list -}}
{{- range .Values.backendAccess.serviceAccounts -}}
{{- $users = append $users (printf "system:serviceaccount:%s:%s" (default $.Release.Namespace .namespace) .name) -}}
{{- end -}}
{{- $users = concat $users .Values.backendAccess.users | uniq -}}
{{- $terms := list -}}
{{- if $users -}}
{{- $terms = append $terms (printf "request.userInfo.username in %s" (toJson $users)) -}}
{{- end -}}
{{- with .Values.backendAccess.groups -}}
{{- $terms = append $terms (printf "request.userInfo.groups.exists(g, g in %s)" (toJson (uniq .))) -}}
{{- end -}}
{{- join " || " $terms -}}
{{- end -}}

{{/* "true" when the operator replicas elect a leader (operator.leaderElection.enabled; null: replicas > 1). */}}
{{- define "channelmodel.leaderElection" -}}
{{- $enabled := .Values.operator.leaderElection.enabled -}}
{{- if kindIs "invalid" $enabled -}}
{{- gt (int .Values.operator.replicas) 1 -}}
{{- else -}}
{{- $enabled -}}
{{- end -}}
{{- end -}}

{{/* Name of the leader-election Lease (one per release, in the release namespace). */}}
{{- define "channelmodel.leaseName" -}}
{{- include "channelmodel.operatorName" . -}}
{{- end -}}

{{/* Refuse combinations values.schema.json cannot express. */}}
{{- define "channelmodel.validate" -}}
{{- with .Values.operator -}}
{{- if and (gt (int .replicas) 1) (eq (include "channelmodel.leaderElection" $) "false") -}}
{{- fail (printf "operator.replicas=%d needs operator.leaderElection.enabled (true or null): without a Lease every replica would act and train twice" (int .replicas)) -}}
{{- end -}}
{{- with .leaderElection -}}
{{- if not (and (gt (int .leaseDurationSeconds) (int .renewDeadlineSeconds)) (gt (mul 10 (int .renewDeadlineSeconds)) (mul 12 (int .retryPeriodSeconds)))) -}}
{{- fail (printf "operator.leaderElection needs leaseDurationSeconds > renewDeadlineSeconds > 1.2 x retryPeriodSeconds (got %d, %d, %d): the leader must give up before a standby takes over" (int .leaseDurationSeconds) (int .renewDeadlineSeconds) (int .retryPeriodSeconds)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if .Values.server.compat.enabled -}}
{{- if not .Values.server.compat.existingSecret -}}
{{- fail (printf "server.compat.enabled=true needs server.compat.existingSecret: the name of a Secret in namespace %q holding the bearer token under key %q (kubectl create secret generic NAME --from-literal=%s=...); the token never goes into values" .Release.Namespace .Values.server.compat.secretKey .Values.server.compat.secretKey) -}}
{{- end -}}
{{- $namespace := include "channelmodel.compatNamespace" . -}}
{{- if and (not .Values.watch.clusterWide) (not (has $namespace (splitList "," (include "channelmodel.watchedNamespaces" .)))) -}}
{{- fail (printf "server.compat.namespace %q is not watched by the operator (it watches %s): ChannelModels the compatibility API finds or creates there would never train; set server.compat.namespace to a watched namespace or add it to watch.namespaces" $namespace (include "channelmodel.watchedNamespaces" .)) -}}
{{- end -}}
{{- end -}}
{{- with .Values.backendAccess -}}
{{- if and .enabled (not (or .serviceAccounts .users .groups)) -}}
{{- fail "backendAccess.enabled=true needs the backend's identities: backendAccess.serviceAccounts ([{name, namespace}]), backendAccess.users or backendAccess.groups" -}}
{{- end -}}
{{- if .enabled -}}
{{- range .serviceAccounts -}}
{{- if and (eq .name (include "channelmodel.operatorServiceAccountName" $)) (eq (default $.Release.Namespace .namespace) $.Release.Namespace) -}}
{{- fail (printf "backendAccess.serviceAccounts names the operator's own ServiceAccount %s/%s: the operator must write specs, finalizers and status; give the backend an account of its own" $.Release.Namespace .name) -}}
{{- end -}}
{{- end -}}
{{- if and .admissionPolicy.enabled (not (semverCompare ">=1.30.0-0" $.Capabilities.KubeVersion.Version)) -}}
{{- fail (printf "backendAccess.admissionPolicy.enabled=true needs Kubernetes 1.30 or newer (ValidatingAdmissionPolicy v1), this cluster is %s: set backendAccess.admissionPolicy.enabled=false (the backend then keeps patch on the whole spec)" $.Capabilities.KubeVersion.Version) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if eq .Values.store.type "pvc" -}}
{{- if or .Values.watch.clusterWide (ne (include "channelmodel.watchedNamespaces" .) .Release.Namespace) -}}
{{- fail (printf "store.type=pvc keeps models on a claim in namespace %q, but training Jobs run in each ChannelModel's namespace and can mount the claim only there: watch only the release namespace (watch.clusterWide=false, watch.namespaces=[]) or use store.type=s3" .Release.Namespace) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* S3 connection env shared by the operator and the model server. */}}
{{- define "channelmodel.s3Env" -}}
{{- if eq .Values.store.type "s3" }}
- name: AWS_REGION
  value: {{ .Values.store.s3.region | quote }}
- name: CHANNELMODEL_S3_ADDRESSING_STYLE
  value: {{ .Values.store.s3.addressingStyle | quote }}
{{- with .Values.store.s3.endpointUrl }}
- name: CHANNELMODEL_S3_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
{{- with .Values.store.s3.existingSecret }}
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
{{- end }}
{{- end -}}

{{- define "channelmodel.storeVolumeMount" -}}
{{- if eq .ctx.Values.store.type "pvc" }}
- name: models
  mountPath: {{ .ctx.Values.store.pvc.path }}
  readOnly: {{ .readOnly }}
{{- end }}
{{- end -}}

{{- define "channelmodel.storeVolume" -}}
{{- if eq .Values.store.type "pvc" }}
- name: models
  persistentVolumeClaim:
    claimName: {{ include "channelmodel.claimName" . }}
{{- end }}
{{- end -}}

{{- define "channelmodel.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.fsGroup }}
# Large model volumes: chown only when the root's group is wrong.
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "channelmodel.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: [ALL]
{{- end -}}

{{/* GPUs of a ChannelModel without spec.training.gpus: trainer.gpus, else 1 with gpu.enabled. */}}
{{- define "channelmodel.defaultGpus" -}}
{{- if kindIs "invalid" .Values.trainer.gpus -}}
{{- ternary 1 0 .Values.trainer.gpu.enabled -}}
{{- else -}}
{{- .Values.trainer.gpus -}}
{{- end -}}
{{- end -}}
