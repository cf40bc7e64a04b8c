package restore

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// The objects the kinds tests (kinds_test.go) apply. The file is long
// because the application is: most kinds a real one uses.

const ktNS = "kt-shop"

// ktClusterYAML are the cluster-scoped objects the namespace pulls in.
const ktClusterYAML = `
apiVersion: v1
kind: Namespace
metadata:
  name: kt-shop
  labels:
    team: storefront
    environment: staging
  annotations:
    example.com/owner: storefront@example.com
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata:
  name: kt-business-critical
value: 100000
globalDefault: false
preemptionPolicy: PreemptLowerPriority
description: "Customer-facing services; may preempt batch work."
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: kt-standard-rwo
  annotations:
    example.com/tier: standard
provisioner: csi.example.com
parameters:
  type: pd-balanced
  fsType: ext4
reclaimPolicy: Retain
allowVolumeExpansion: true
volumeBindingMode: WaitForFirstConsumer
mountOptions:
- noatime
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: kt-external
spec:
  controller: example.com/ingress-controller
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: kt-metrics-reader
rules:
- apiGroups: ["metrics.k8s.io"]
  resources: ["pods", "nodes"]
  verbs: ["get", "list", "watch"]
- nonResourceURLs: ["/metrics"]
  verbs: ["get"]
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: cacheclusters.kt.example.com
spec:
  group: kt.example.com
  scope: Namespaced
  names:
    plural: cacheclusters
    singular: cachecluster
    kind: CacheCluster
    shortNames: ["cc"]
    categories: ["all"]
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
    additionalPrinterColumns:
    - name: Engine
      type: string
      jsonPath: .spec.engine
    - name: Replicas
      type: integer
      jsonPath: .spec.replicas
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: ["engine"]
            properties:
              engine:
                type: string
                enum: ["redis", "memcached"]
              replicas:
                type: integer
                minimum: 1
                default: 1
              memory:
                type: string
                pattern: '^[0-9]+(Mi|Gi)$'
              evictionPolicy:
                type: string
              tags:
                type: object
                additionalProperties:
                  type: string
          status:
            type: object
            properties:
              replicas:
                type: integer
              phase:
                type: string
`

// ktAppYAML are the namespaced objects; TLS_CRT, TLS_KEY, DOCKER_CONFIG
// and BINARY are filled in by ktManifests.
const ktAppYAML = `
apiVersion: v1
kind: ConfigMap
metadata:
  name: storefront-config
  labels:
    app.kubernetes.io/name: storefront
data:
  LOG_LEVEL: info
  CACHE_HOST: sessions.kt-shop.svc.cluster.local
  nginx.conf: |
    server {
      listen 8080;
      location /healthz { return 200 'ok'; }
    }
binaryData:
  favicon.ico: BINARY
---
apiVersion: v1
kind: Secret
metadata:
  name: db-credentials
type: Opaque
data:
  username: c3RvcmVmcm9udA==
  password: czNjcjN0LXBhc3N3MHJk
---
apiVersion: v1
kind: Secret
metadata:
  name: registry-credentials
type: kubernetes.io/dockerconfigjson
data:
  .dockerconfigjson: DOCKER_CONFIG
---
apiVersion: v1
kind: Secret
metadata:
  name: storefront-tls
type: kubernetes.io/tls
data:
  tls.crt: TLS_CRT
  tls.key: TLS_KEY
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: storefront
  labels:
    app.kubernetes.io/name: storefront
imagePullSecrets:
- name: registry-credentials
automountServiceAccountToken: false
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: default
imagePullSecrets:
- name: registry-credentials
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: build-robot
---
apiVersion: v1
kind: Secret
metadata:
  name: build-robot-secret
  annotations:
    kubernetes.io/service-account.name: build-robot
type: kubernetes.io/service-account-token
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: config-reader
rules:
- apiGroups: [""]
  resources: ["configmaps"]
  resourceNames: ["storefront-config"]
  verbs: ["get", "watch", "list"]
- apiGroups: [""]
  resources: ["pods", "pods/log"]
  verbs: ["get", "list"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: storefront-config-reader
subjects:
- kind: ServiceAccount
  name: storefront
  namespace: kt-shop
- kind: User
  name: jane@example.com
  apiGroup: rbac.authorization.k8s.io
roleRef:
  kind: Role
  name: config-reader
  apiGroup: rbac.authorization.k8s.io
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: storefront-metrics
subjects:
- kind: ServiceAccount
  name: storefront
  namespace: kt-shop
roleRef:
  kind: ClusterRole
  name: kt-metrics-reader
  apiGroup: rbac.authorization.k8s.io
---
apiVersion: v1
kind: ResourceQuota
metadata:
  name: compute-resources
spec:
  hard:
    requests.cpu: "20"
    requests.memory: 40Gi
    limits.cpu: "40"
    limits.memory: 80Gi
    pods: "50"
    persistentvolumeclaims: "10"
    requests.storage: 500Gi
---
apiVersion: v1
kind: LimitRange
metadata:
  name: container-defaults
spec:
  limits:
  - type: Container
    default:
      cpu: 500m
      memory: 512Mi
    defaultRequest:
      cpu: 100m
      memory: 128Mi
    max:
      cpu: "4"
      memory: 8Gi
  - type: PersistentVolumeClaim
    min:
      storage: 1Gi
    max:
      storage: 100Gi
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: storefront
  labels:
    app.kubernetes.io/name: storefront
    app.kubernetes.io/component: web
  annotations:
    example.com/change-cause: "release 2024.06.1"
spec:
  replicas: 2
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      app.kubernetes.io/name: storefront
      app.kubernetes.io/component: web
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 25%
      maxUnavailable: 0
  template:
    metadata:
      labels:
        app.kubernetes.io/name: storefront
        app.kubernetes.io/component: web
      annotations:
        prometheus.io/scrape: "true"
        prometheus.io/port: "9090"
    spec:
      serviceAccountName: storefront
      priorityClassName: kt-business-critical
      terminationGracePeriodSeconds: 45
      securityContext:
        runAsNonRoot: true
        runAsUser: 10001
        runAsGroup: 10001
        fsGroup: 10001
        seccompProfile:
          type: RuntimeDefault
      initContainers:
      - name: wait-for-cache
        image: busybox:1.36
        command: ["sh", "-c", "until nslookup sessions; do sleep 2; done"]
      containers:
      - name: web
        image: registry.example.com/storefront/web:2024.06.1
        imagePullPolicy: IfNotPresent
        args: ["--config=/etc/storefront/nginx.conf"]
        ports:
        - name: http
          containerPort: 8080
        - name: metrics
          containerPort: 9090
        env:
        - name: LOG_LEVEL
          valueFrom:
            configMapKeyRef:
              name: storefront-config
              key: LOG_LEVEL
        - name: DB_PASSWORD
          valueFrom:
            secretKeyRef:
              name: db-credentials
              key: password
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        - name: MEMORY_LIMIT
          valueFrom:
            resourceFieldRef:
              containerName: web
              resource: limits.memory
        - name: FEATURE_FLAGS
          value: "checkout-v2,recommendations"
        envFrom:
        - configMapRef:
            name: storefront-config
        - prefix: DB_
          secretRef:
            name: db-credentials
        resources:
          requests:
            cpu: 250m
            memory: 256Mi
          limits:
            cpu: "1"
            memory: 1Gi
        startupProbe:
          httpGet:
            path: /healthz
            port: http
          failureThreshold: 30
          periodSeconds: 2
        livenessProbe:
          httpGet:
            path: /healthz
            port: http
            httpHeaders:
            - name: X-Probe
              value: liveness
          initialDelaySeconds: 3
          periodSeconds: 10
        readinessProbe:
          tcpSocket:
            port: 8080
          periodSeconds: 5
        lifecycle:
          preStop:
            exec:
              command: ["/bin/sh", "-c", "sleep 10"]
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities:
            drop: ["ALL"]
        volumeMounts:
        - name: config
          mountPath: /etc/storefront
          readOnly: true
        - name: tls
          mountPath: /etc/tls
          readOnly: true
        - name: cache
          mountPath: /var/cache/nginx
        - name: uploads
          mountPath: /srv/uploads
      volumes:
      - name: config
        configMap:
          name: storefront-config
          items:
          - key: nginx.conf
            path: nginx.conf
      - name: tls
        secret:
          secretName: storefront-tls
          defaultMode: 0400
      - name: cache
        emptyDir:
          medium: Memory
          sizeLimit: 64Mi
      - name: uploads
        persistentVolumeClaim:
          claimName: uploads
      tolerations:
      - key: dedicated
        operator: Equal
        value: storefront
        effect: NoSchedule
      - key: node.kubernetes.io/not-ready
        operator: Exists
        effect: NoExecute
        tolerationSeconds: 120
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
            - matchExpressions:
              - key: kubernetes.io/os
                operator: In
                values: ["linux"]
          preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 50
            preference:
              matchExpressions:
              - key: topology.kubernetes.io/zone
                operator: In
                values: ["zone-a", "zone-b"]
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 100
            podAffinityTerm:
              labelSelector:
                matchLabels:
                  app.kubernetes.io/name: storefront
              topologyKey: kubernetes.io/hostname
      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: topology.kubernetes.io/zone
        whenUnsatisfiable: ScheduleAnyway
        labelSelector:
          matchLabels:
            app.kubernetes.io/name: storefront
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: uploads
spec:
  accessModes:
  - ReadWriteOnce
  storageClassName: kt-standard-rwo
  resources:
    requests:
      storage: 5Gi
---
apiVersion: v1
kind: Service
metadata:
  name: storefront
  labels:
    app.kubernetes.io/name: storefront
spec:
  selector:
    app.kubernetes.io/name: storefront
    app.kubernetes.io/component: web
  ports:
  - name: http
    port: 80
    targetPort: http
  - name: metrics
    port: 9090
    targetPort: metrics
---
apiVersion: v1
kind: Service
metadata:
  name: storefront-public
  annotations:
    service.beta.kubernetes.io/aws-load-balancer-type: nlb
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector:
    app.kubernetes.io/name: storefront
  ports:
  - name: https
    port: 443
    targetPort: 8080
    protocol: TCP
---
apiVersion: v1
kind: Service
metadata:
  name: orders-db
spec:
  type: ExternalName
  externalName: orders.db.example.com
---
apiVersion: v1
kind: Service
metadata:
  name: payments-api
spec:
  ports:
  - name: https
    protocol: TCP
    port: 443
    targetPort: 8443
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: payments-api-1
  labels:
    kubernetes.io/service-name: payments-api
    endpointslice.kubernetes.io/managed-by: payments-team
addressType: IPv4
ports:
- name: https
  appProtocol: https
  protocol: TCP
  port: 8443
endpoints:
- addresses:
  - "10.4.5.6"
  conditions:
    ready: true
- addresses:
  - "10.4.5.7"
  conditions:
    ready: true
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: storefront
  annotations:
    nginx.ingress.kubernetes.io/rewrite-target: /
spec:
  ingressClassName: kt-external
  tls:
  - hosts:
    - shop.example.com
    secretName: storefront-tls
  rules:
  - host: shop.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: storefront
            port:
              name: http
      - path: /api/orders
        pathType: ImplementationSpecific
        backend:
          service:
            name: orders-db
            port:
              number: 5432
---
apiVersion: v1
kind: Service
metadata:
  name: sessions
  labels:
    app.kubernetes.io/name: sessions
spec:
  clusterIP: None
  selector:
    app.kubernetes.io/name: sessions
  ports:
  - name: redis
    port: 6379
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: sessions
spec:
  serviceName: sessions
  replicas: 1
  podManagementPolicy: Parallel
  selector:
    matchLabels:
      app.kubernetes.io/name: sessions
  template:
    metadata:
      labels:
        app.kubernetes.io/name: sessions
    spec:
      containers:
      - name: redis
        image: redis:7.2-alpine
        args: ["--appendonly", "yes"]
        ports:
        - name: redis
          containerPort: 6379
        volumeMounts:
        - name: data
          mountPath: /data
        readinessProbe:
          exec:
            command: ["redis-cli", "ping"]
  volumeClaimTemplates:
  - metadata:
      name: data
    spec:
      accessModes: ["ReadWriteOnce"]
      storageClassName: kt-standard-rwo
      resources:
        requests:
          storage: 2Gi
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: log-shipper
  labels:
    app.kubernetes.io/name: log-shipper
spec:
  selector:
    matchLabels:
      app.kubernetes.io/name: log-shipper
  updateStrategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 1
  template:
    metadata:
      labels:
        app.kubernetes.io/name: log-shipper
    spec:
      tolerations:
      - key: node-role.kubernetes.io/control-plane
        operator: Exists
        effect: NoSchedule
      containers:
      - name: shipper
        image: fluent/fluent-bit:3.0
        resources:
          limits:
            memory: 200Mi
          requests:
            cpu: 100m
            memory: 200Mi
        volumeMounts:
        - name: varlog
          mountPath: /var/log
          readOnly: true
      volumes:
      - name: varlog
        hostPath:
          path: /var/log
          type: Directory
---
apiVersion: batch/v1
kind: Job
metadata:
  name: db-migrate
spec:
  backoffLimit: 4
  activeDeadlineSeconds: 600
  ttlSecondsAfterFinished: 86400
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: migrate
        image: registry.example.com/storefront/migrate:2024.06.1
        command: ["migrate", "--to=latest"]
        envFrom:
        - secretRef:
            name: db-credentials
---
apiVersion: batch/v1
kind: CronJob
metadata:
  name: nightly-report
spec:
  schedule: "30 2 * * *"
  timeZone: Etc/UTC
  concurrencyPolicy: Forbid
  startingDeadlineSeconds: 300
  successfulJobsHistoryLimit: 3
  failedJobsHistoryLimit: 1
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
          - name: report
            image: registry.example.com/storefront/report:2024.06.1
            args: ["--since=24h"]
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: storefront
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: storefront
  minReplicas: 2
  maxReplicas: 10
  metrics:
  - type: Resource
    resource:
      name: cpu
      target:
        type: Utilization
        averageUtilization: 70
  - type: Resource
    resource:
      name: memory
      target:
        type: AverageValue
        averageValue: 500Mi
  behavior:
    scaleDown:
      stabilizationWindowSeconds: 300
      policies:
      - type: Percent
        value: 50
        periodSeconds: 60
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: storefront
spec:
  minAvailable: 1
  selector:
    matchLabels:
      app.kubernetes.io/name: storefront
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: storefront-ingress
spec:
  podSelector:
    matchLabels:
      app.kubernetes.io/name: storefront
  policyTypes:
  - Ingress
  - Egress
  ingress:
  - from:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: ingress-system
    - podSelector:
        matchLabels:
          role: frontend
    - ipBlock:
        cidr: 172.17.0.0/16
        except:
        - 172.17.1.0/24
    ports:
    - protocol: TCP
      port: 8080
  egress:
  - to:
    - podSelector:
        matchLabels:
          app.kubernetes.io/name: sessions
    ports:
    - protocol: TCP
      port: 6379
  - ports:
    - protocol: UDP
      port: 53
---
apiVersion: kt.example.com/v1
kind: CacheCluster
metadata:
  name: sessions
  labels:
    app.kubernetes.io/name: sessions
spec:
  engine: redis
  replicas: 3
  memory: 512Mi
  evictionPolicy: allkeys-lru
  tags:
    cost-center: "4711"
`

// ktClusterObjects are the cluster-scoped objects of ktClusterYAML other
// than the namespace, as "<resource>.<group>/<name>".
var ktClusterObjects = []rtRef{
	{gvr: schema.GroupVersionResource{Group: "scheduling.k8s.io", Version: "v1", Resource: "priorityclasses"}, name: "kt-business-critical"},
	{gvr: gvrSC, name: "kt-standard-rwo"},
	{gvr: schema.GroupVersionResource{Group: "networking.k8s.io", Version: "v1", Resource: "ingressclasses"}, name: "kt-external"},
	{gvr: schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"}, name: "kt-metrics-reader"},
	{gvr: gvrCRD, name: "cacheclusters.kt.example.com"},
}

// ktManifests fills in the placeholders with real data: a self-signed
// certificate, a registry login and a few bytes that are not UTF-8.
func ktManifests(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: "shop.example.com"},
		DNSNames: []string{"shop.example.com"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString
	crt := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	auth := b64([]byte("robot$storefront:pa55w0rd"))
	docker := fmt.Sprintf(`{"auths":{"registry.example.com":{"username":"robot$storefront","password":"pa55w0rd","auth":%q}}}`, auth)
	return strings.NewReplacer("TLS_CRT", b64(crt), "TLS_KEY", b64(keyPEM), "DOCKER_CONFIG", b64([]byte(docker)),
		"BINARY", b64([]byte{0, 0, 1, 0, 1, 0, 0x10, 0x10, 0xff, 0xfe, 0x80})).Replace(ktAppYAML)
}

// ktPolicyYAML is a cluster-wide admission policy, which only a backup of
// the whole cluster holds.
const ktPolicyYAML = `
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: kt-replica-limit
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - apiGroups: ["apps"]
      apiVersions: ["v1"]
      operations: ["CREATE", "UPDATE"]
      resources: ["deployments"]
  validations:
  - expression: "object.spec.replicas <= 20"
    message: "at most 20 replicas"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: kt-replica-limit
spec:
  policyName: kt-replica-limit
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels:
        team: storefront
`

// ktWebhookYAML is a mutating webhook for the apps of the team, as a
// policy engine or sidecar injector installs one; its service is not
// running, so while it is registered, creating workloads there fails.
const ktWebhookYAML = `
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: kt-workload-defaults
webhooks:
- name: workload-defaults.kt.example.com
  admissionReviewVersions: ["v1"]
  sideEffects: None
  failurePolicy: Fail
  timeoutSeconds: 5
  clientConfig:
    service:
      namespace: kt-shop
      name: workload-defaults
      path: /mutate
      port: 443
  rules:
  - apiGroups: ["apps"]
    apiVersions: ["v1"]
    operations: ["CREATE"]
    resources: ["deployments", "statefulsets", "daemonsets"]
  namespaceSelector:
    matchLabels:
      team: storefront
`
