{{/* Names and labels. */}}
{{- define "moe.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "moe.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "moe.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "moe.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: moe-serve
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "router" "group" "") */}}
{{- define "moe.selector" -}}
app.kubernetes.io/name: {{ include "moe.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- if .group }}
moe-serve.io/expert-group: {{ .group }}
{{- end }}
{{- end -}}

{{- define "moe.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "moe.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* image: (dict "root" $ "image" .image) */}}
{{- define "moe.image" -}}
{{- $tag := default (default .root.Chart.AppVersion .root.Values.image.tag) .image.tag -}}
{{- if .root.Values.image.registry -}}
{{- printf "%s/%s:%s" .root.Values.image.registry .image.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "moe.expertName" -}}
{{- printf "%s-expert-%s" (include "moe.fullname" .root) .group | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "moe.modelPath" -}}
{{- if .Values.model.dir -}}
{{- printf "%s/%s" (trimSuffix "/" .Values.model.mountPath) .Values.model.dir -}}
{{- else -}}
{{- .Values.model.mountPath -}}
{{- end -}}
{{- end -}}

{{- define "moe.hubSecretName" -}}
{{- default (printf "%s-hub-token" (include "moe.fullname" .)) .Values.model.download.tokenSecret.existingSecret -}}
{{- end -}}

{{- define "moe.apiKeySecretName" -}}
{{- default (printf "%s-api-keys" (include "moe.fullname" .)) .Values.gateway.apiKeys.existingSecret -}}
{{- end -}}

{{/* Environment every service reads. */}}
{{- define "moe.commonEnv" -}}
- name: MOE_MODEL_PATH
  value: {{ include "moe.modelPath" . | quote }}
- name: MOE_MODEL_ID
  value: {{ .Values.model.id | quote }}
- name: QUARKUS_HTTP_PORT
  value: "8080"
- name: DJL_CACHE_DIR
  value: /tmp/djl
- name: HOME
  value: /tmp
{{- if .Values.tls.enabled }}
- name: MOE_TLS_ENABLED
  value: "true"
- name: MOE_TLS_MUTUAL
  value: {{ .Values.tls.mutual | quote }}
- name: MOE_TLS_RELOAD_PERIOD
  value: {{ .Values.tls.reloadPeriod | quote }}
{{- end }}
{{- end -}}

{{/* Model volume and /tmp, for any pod. */}}
{{- define "moe.volumes" -}}
- name: tmp
  emptyDir: {}
- name: model
{{- if eq .Values.model.source "pvc" }}
  persistentVolumeClaim:
    claimName: {{ .Values.model.pvc.claimName }}
    readOnly: true
{{- else }}
  emptyDir:
    sizeLimit: {{ .Values.model.download.sizeLimit }}
{{- end }}
{{- if .Values.tls.enabled }}
- name: tls
  secret:
    secretName: {{ required "tls.secretName is required when tls.enabled is true" .Values.tls.secretName }}
{{- end }}
{{- end -}}

{{- define "moe.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: model
  mountPath: {{ .Values.model.mountPath }}
  readOnly: true
{{- if .Values.tls.enabled }}
{{- /* not a subPath mount: the kubelet updates a renewed Secret in place, and the services re-read it */}}
- name: tls
  mountPath: /etc/moe-serve/tls
  readOnly: true
{{- end }}
{{- end -}}

{{/* The init container that fetches the checkpoint (model.source=download). */}}
{{- define "moe.downloadInit" -}}
{{- if eq .Values.model.source "download" }}
initContainers:
  - name: fetch-model
    image: {{ .Values.model.download.image }}
    imagePullPolicy: {{ .Values.image.pullPolicy }}
    securityContext:
      {{- toYaml .Values.securityContext | nindent 6 }}
    command: ["sh", "-ec"]
    args:
      - |
        if [ -f "$MOE_MODEL_PATH/config.json" ]; then echo "checkpoint already present"; exit 0; fi
        pip install --quiet --no-cache-dir --target /tmp/pip "$MOE_HUB_PIP"
        PYTHONPATH=/tmp/pip python - <<'PY'
        import os
        from huggingface_hub import snapshot_download
        snapshot_download(repo_id=os.environ["MOE_HUB_REPO"], revision=os.environ["MOE_HUB_REVISION"],
                          local_dir=os.environ["MOE_MODEL_PATH"],
                          allow_patterns=os.environ["MOE_HUB_ALLOW"].split(","))
        # Files just written stay in the page cache in 4 KiB pages; evicted, they come back from disk in 2 MiB
        # folios where the kernel can (ext4 from Linux 6.16, XFS), which the services then map with huge pages:
        # about 10% faster decode (BENCHMARKS.md, "Huge pages").
        for root, _, files in os.walk(os.environ["MOE_MODEL_PATH"]):
            for name in files:
                fd = os.open(os.path.join(root, name), os.O_RDONLY)
                try:
                    os.fsync(fd)
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)
        PY
    env:
      - name: MOE_MODEL_PATH
        value: {{ include "moe.modelPath" . | quote }}
      - name: MOE_HUB_REPO
        value: {{ required "model.download.repo is required when model.source is download" .Values.model.download.repo | quote }}
      - name: MOE_HUB_REVISION
        value: {{ .Values.model.download.revision | quote }}
      - name: MOE_HUB_ALLOW
        value: {{ join "," .Values.model.download.allowPatterns | quote }}
      - name: MOE_HUB_PIP
        value: {{ .Values.model.download.pipPackage | quote }}
      - name: HOME
        value: /tmp
      - name: HF_HOME
        value: /tmp/hf
      - name: HF_TOKEN
        valueFrom:
          secretKeyRef:
            name: {{ include "moe.hubSecretName" . }}
            key: {{ .Values.model.download.tokenSecret.key }}
            optional: true
    resources:
      {{- toYaml .Values.model.download.resources | nindent 6 }}
    volumeMounts:
      - name: tmp
        mountPath: /tmp
      - name: model
        mountPath: {{ .Values.model.mountPath }}
{{- end }}
{{- end -}}

{{/* Probes on the Quarkus health endpoints: (dict "startupPeriod" 10 "startupFailures" 60) */}}
{{- define "moe.probes" -}}
startupProbe:
  httpGet: {path: /q/health/started, port: http}
  periodSeconds: {{ .startupPeriod }}
  failureThreshold: {{ .startupFailures }}
  timeoutSeconds: 3
readinessProbe:
  httpGet: {path: /q/health/ready, port: http}
  periodSeconds: 5
  failureThreshold: 2
  timeoutSeconds: 3
livenessProbe:
  httpGet: {path: /q/health/live, port: http}
  periodSeconds: 10
  failureThreshold: 6
  timeoutSeconds: 5
{{- end -}}

{{- define "moe.metricsAnnotations" -}}
{{- if .Values.metrics.podAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: "8080"
prometheus.io/path: /q/metrics
{{- end }}
{{- end -}}

{{/* The expert groups in effect (toYaml): the values' map, or one group "all" hosting every expert. */}}
{{- define "moe.groups" -}}
{{- if .Values.expertGroups -}}
{{- toYaml .Values.expertGroups -}}
{{- else -}}
{{- toYaml (dict "all" (dict "hosts" "*")) -}}
{{- end -}}
{{- end -}}

{{/* A group's values: expertDefaults overridden by the group's own keys. */}}
{{- define "moe.group" -}}
{{- $g := mergeOverwrite (deepCopy .root.Values.expertDefaults) (deepCopy .values) -}}
{{- toYaml $g -}}
{{- end -}}

{{/* Milli-units quantity of a number: 0.6 -> 600m */}}
{{- define "moe.quantity" -}}
{{- printf "%dm" (int64 (round (mulf . 1000) 0)) -}}
{{- end -}}

{{/* The router's expert map (Quarkus properties). */}}
{{- define "moe.expertMap" -}}
moe.router.experts.mode=remote
moe.router.experts.routing-table-version={{ .Values.routingTableVersion }}
moe.router.experts.refresh-interval={{ .Values.router.refreshInterval }}
{{- with .Values.router.expertSkipping }}
{{- if or (gt (float64 .threshold) 0.0) (ne (float64 .protectFraction) 0.02) }}
moe.router.expert-skipping.threshold={{ .threshold }}
moe.router.expert-skipping.protect-fraction={{ .protectFraction }}
{{- end }}
{{- end }}
{{- if ne (int .Values.router.microBatches) 1 }}
moe.router.experts.micro-batches={{ .Values.router.microBatches }}
{{- end }}
{{- if ne (int .Values.router.microBatchMinTokens) 2 }}
moe.router.experts.micro-batch-min-tokens={{ .Values.router.microBatchMinTokens }}
{{- end }}
{{- if not .Values.router.prefixCaching }}
moe.router.prefix-caching.enabled=false
{{- end }}
{{- if ne .Values.router.kvCacheDtype "f32" }}
moe.router.batching.kv-cache-dtype={{ .Values.router.kvCacheDtype }}
{{- end }}
{{- if ne (int .Values.router.spinWaitMicros) 0 }}
moe.router.experts.spin-wait-micros={{ .Values.router.spinWaitMicros }}
{{- end }}
{{- if ne .Values.router.expertTransport "stream" }}
moe.router.experts.transport={{ .Values.router.expertTransport }}
{{- end }}
{{- range $name, $values := include "moe.groups" . | fromYaml }}
moe.router.experts.groups.{{ $name }}.hosts={{ $values.hosts }}
moe.router.experts.groups.{{ $name }}.endpoints=dns:{{ include "moe.expertName" (dict "root" $ "group" $name) }}.{{ $.Release.Namespace }}.svc.{{ $.Values.clusterDomain }}:9000
{{- end }}
{{- range $k, $v := .Values.router.extraProperties }}
{{ $k }}={{ $v }}
{{- end }}
{{- end -}}

{{/* Egress every component needs: DNS, the model hub when downloading, and the operator's extras. */}}
{{- define "moe.egressCommon" -}}
- to: {{ toYaml .Values.networkPolicy.dnsTo | nindent 4 }}
  ports:
    - {port: 53, protocol: UDP}
    - {port: 53, protocol: TCP}
{{- if eq .Values.model.source "download" }}
- ports:
    - {port: 443, protocol: TCP}
{{- end }}
{{- with .Values.networkPolicy.extraEgress }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
A JVM container's memory (helm/README.md, "Memory"): (dict "memory" .memory "resources" .resources) -> YAML with
"resources" and "javaOptions". Heap (plus the router's KV cache, which may take at most 70% of it) + direct memory
+ the JVM's own overhead + resident weights, rounded up to whole GiB, is both the request and the limit: memory is
not overcommitted, since a pod over its limit is killed, not slowed. The heap is committed whole at start (-Xms),
so that it is never resized. A memory named in resources wins.
*/}}
{{- define "moe.jvmMemory" -}}
{{- $m := .memory -}}
{{- $heap := int64 $m.heapMiB -}}
{{- with $m.kvCacheMiB }}
{{- $heap = max (add $heap .) (div (add (mul . 10) 6) 7) -}}
{{- end }}
{{- $need := add $heap $m.directMiB $m.overheadMiB $m.weightsMiB -}}
{{- $res := deepCopy (.resources | default dict) -}}
{{- $given := dig "limits" "memory" (dig "requests" "memory" "" $res) $res -}}
{{- $memory := $given | default (printf "%dGi" (div (add $need 1023) 1024)) -}}
{{- $requests := get $res "requests" | default dict -}}
{{- $limits := get $res "limits" | default dict -}}
{{- $_ := set $requests "memory" (get $requests "memory" | default $memory) -}}
{{- $_ = set $limits "memory" (get $limits "memory" | default $memory) -}}
{{- $_ = set $res "requests" $requests -}}
{{- $_ = set $res "limits" $limits }}
resources: {{ toYaml $res | nindent 2 }}
javaOptions: {{ printf "-Xms%dm -Xmx%dm -XX:MaxDirectMemorySize=%dm" $heap $heap (int64 $m.directMiB) | quote }}
{{- end -}}
