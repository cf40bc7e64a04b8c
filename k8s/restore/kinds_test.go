package restore

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"maps"
	"math/big"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/k8s/backup"
	"github.com/cairn-backup/cairn/k8s/kube"
	"github.com/cairn-backup/cairn/k8s/layout"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/tests/cluster"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"
)

// The "kinds" tests (prefixed kt) back up a namespace holding most kinds a
// real application uses, written the way Kubernetes' documentation writes
// its examples (no namespace in the manifests: they are applied with one,
// server-side, as `kubectl apply --server-side -n` does), and restore it in
// place, under another name and into another cluster.

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

// ktApplied is one object as applied: its resource and the live object.
type ktApplied struct {
	gvr schema.GroupVersionResource
	obj *unstructured.Unstructured
}

func (a ktApplied) key() string {
	return grString(a.gvr.GroupResource()) + " " + path.Join(a.obj.GetNamespace(), a.obj.GetName())
}

// ktApply applies the documents of a YAML stream server-side (namespaced
// ones in ns) and returns them as the server has them.
func ktApply(t *testing.T, cl *kube.Clients, ns, docs string) []ktApplied {
	t.Helper()
	ctx := context.Background()
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(cl.Discovery))
	var out []ktApplied
	for _, doc := range strings.Split(docs, "\n---\n") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		js, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			t.Fatalf("%v in\n%s", err, doc)
		}
		o := &unstructured.Unstructured{}
		if err := o.UnmarshalJSON(js); err != nil {
			t.Fatalf("%v in\n%s", err, doc)
		}
		gvk := o.GroupVersionKind()
		var gvr schema.GroupVersionResource
		var namespaced bool
		deadline := time.Now().Add(30 * time.Second)
		for {
			m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			if err == nil {
				gvr, namespaced = m.Resource, m.Scope.Name() == "namespace"
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("map %v: %v", gvk, err)
			}
			mapper.Reset() // a CRD applied just before
			time.Sleep(200 * time.Millisecond)
		}
		var ri dynamic.ResourceInterface = cl.Dynamic.Resource(gvr)
		if namespaced {
			ri = cl.Dynamic.Resource(gvr).Namespace(ns)
		}
		live, err := ri.Patch(ctx, o.GetName(), types.ApplyPatchType, js, metav1.PatchOptions{FieldManager: "kt-test", Force: new(true)})
		if err != nil {
			t.Fatalf("apply %v %s: %v", gvk, o.GetName(), err)
		}
		out = append(out, ktApplied{gvr: gvr, obj: live})
	}
	return out
}

// ktSetup applies the application and waits until the controllers have
// made what they make (ReplicaSet, pods, claims of the StatefulSet), so
// that the backup holds a settled namespace.
func ktSetup(t *testing.T, cl *kube.Clients) []ktApplied {
	t.Helper()
	ctx := context.Background()
	t.Cleanup(func() {
		bg := context.Background()
		for _, ns := range []string{ktNS, ktNS + "-copy"} {
			_ = cl.Dynamic.Resource(gvrNamespace).Delete(bg, ns, metav1.DeleteOptions{})
		}
		for _, o := range ktClusterObjects {
			_ = rtResource(cl, o).Delete(bg, o.name, metav1.DeleteOptions{})
		}
	})
	applied := ktApply(t, cl, "", ktClusterYAML)
	ktWaitCRD(t, cl, "cacheclusters.kt.example.com")
	applied = append(applied, ktApply(t, cl, ktNS, ktManifests(t))...)
	pods := func(selector string, n int) func() bool {
		return func() bool {
			l, err := cl.Dynamic.Resource(gvrPod).Namespace(ktNS).List(ctx, metav1.ListOptions{LabelSelector: selector})
			return err == nil && len(l.Items) == n
		}
	}
	rtWaitFor(t, "the storefront pods", 60*time.Second, pods("app.kubernetes.io/name=storefront", 2))
	rtWaitFor(t, "the sessions pod", 60*time.Second, pods("app.kubernetes.io/name=sessions", 1))
	rtWaitFor(t, "the migration pod", 60*time.Second, pods("batch.kubernetes.io/job-name=db-migrate", 1))
	rtWaitFor(t, "the claim of the sessions pod", 60*time.Second, func() bool {
		return rtGet(t, cl, gvrPVC, ktNS, "data-sessions-0") != nil
	})
	// A run of the CronJob, as `kubectl create job --from=cronjob/…`
	// makes one: owned by the CronJob, with a pod of its own.
	cj := rtGet(t, cl, schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "cronjobs"}, ktNS, "nightly-report")
	run := ktApply(t, cl, ktNS, fmt.Sprintf(`
apiVersion: batch/v1
kind: Job
metadata:
  name: nightly-report-manual-1
  ownerReferences:
  - {apiVersion: batch/v1, kind: CronJob, name: nightly-report, uid: %s, controller: true}
spec:
  template:
    spec:
      restartPolicy: OnFailure
      containers:
      - name: report
        image: registry.example.com/storefront/report:2024.06.1
        args: ["--since=24h"]
`, cj.GetUID()))
	if metav1.GetControllerOfNoCopy(run[0].obj) == nil {
		t.Fatal("the CronJob's run has no controller")
	}
	rtWaitFor(t, "the pod of the CronJob's run", 60*time.Second, pods("batch.kubernetes.io/job-name=nightly-report-manual-1", 1))
	return applied
}

// ktNormalize is rtNormalize plus what a restore may change on the kinds
// of this test: a Job's generated selector.
func ktNormalize(o *unstructured.Unstructured, gr schema.GroupResource) *unstructured.Unstructured {
	o = o.DeepCopy()
	if gr == grJob {
		cleanJob(o)
		unstructured.RemoveNestedField(o.Object, "metadata", "labels", "controller-uid")
		unstructured.RemoveNestedField(o.Object, "metadata", "labels", "batch.kubernetes.io/controller-uid")
	}
	return &unstructured.Unstructured{Object: rtNormalize(o, gr)}
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

// ktBackup backs up with spec and checks that it completed.
func ktBackup(t *testing.T, cl *kube.Clients, r *repo.Repository, name string, spec layout.BackupSpec) *snapshot.Snapshot {
	t.Helper()
	res, err := backup.Backup(context.Background(), cl, r, backup.BackupOptions{Name: name, Spec: spec})
	if err != nil {
		t.Fatalf("backup %s: %v", name, err)
	}
	if res.Info.Phase != layout.PhaseCompleted {
		t.Fatalf("backup %s: %s: %v", name, res.Info.Phase, res.Info.Errors)
	}
	return res.Snapshot
}

// ktBacked is what a backup holds: objects by rtItems key.
type ktBacked map[string]*unstructured.Unstructured

// ktRead reads every manifest of a backup.
func ktRead(t *testing.T, r *repo.Repository, sn *snapshot.Snapshot) ktBacked {
	t.Helper()
	ctx := context.Background()
	src, err := OpenBackupSource(ctx, r, sn)
	if err != nil {
		t.Fatal(err)
	}
	out := ktBacked{}
	for _, m := range src.Manifests {
		o, err := src.Object(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		out[grString(m.GroupResource())+" "+path.Join(m.Namespace, m.Name)] = o
	}
	return out
}

// ktRestorable reports whether a backed-up object is one a restore must
// bring back (and list): pods of Jobs and Jobs of CronJobs are left to
// their restored owner.
func ktRestorable(key string, o *unstructured.Unstructured) bool {
	c := metav1.GetControllerOfNoCopy(o)
	switch {
	case c == nil:
		return true
	case strings.HasPrefix(key, "pods "):
		return c.Kind != "Job"
	case strings.HasPrefix(key, "jobs.batch "):
		return c.Kind != "CronJob"
	}
	return true
}

// ktSummary logs a restore's counts and every item that failed.
func ktSummary(t *testing.T, res *RestoreResult) {
	t.Helper()
	byAction := map[string]int{}
	for _, c := range res.Counts {
		for a, n := range c {
			byAction[a] += n
		}
	}
	t.Logf("restore %s: %s, %s", res.Name, res.Phase, ktKeys(byAction))
	for _, e := range res.Errors {
		t.Logf("  error: %s", e)
	}
}

// ktMadeByCluster reports objects that the cluster makes by itself in a
// new namespace and that a restore may therefore find existing.
func ktMadeByCluster(key string) bool {
	return strings.HasPrefix(key, "configmaps ") && strings.HasSuffix(key, "/kube-root-ca.crt") ||
		strings.HasPrefix(key, "serviceaccounts ") && strings.HasSuffix(key, "/default")
}

// ktWantRestored checks that every object of the backup in namespace ns
// (and every cluster-scoped one, with ns "") was created, or found made by
// the cluster.
func ktWantRestored(t *testing.T, res *RestoreResult, backed ktBacked, ns string, nsMap map[string]string) {
	t.Helper()
	items := rtItems(res)
	for k, o := range backed {
		if o.GetNamespace() != ns || !ktRestorable(k, o) {
			continue
		}
		want := o.DeepCopy()
		gr := splitGR(strings.Fields(k)[0])
		mapNamespace(want, gr, nsMap)
		key := grString(gr) + " " + path.Join(want.GetNamespace(), want.GetName())
		it, ok := items[key]
		switch {
		case !ok:
			t.Errorf("%s: in the backup, not restored", key)
		case it.Action != ActionCreated && !(ktMadeByCluster(key) && (it.Action == ActionSkippedExists || it.Action == ActionUpdated)):
			t.Errorf("%s: %s (%s)", key, it.Action, it.Reason)
		}
	}
}

// ktCompare checks that the applied objects are live in the cluster (in
// the namespace they are mapped to), restored by cairn and equal to their
// backed-up state.
func ktCompare(t *testing.T, cl *kube.Clients, applied []ktApplied, backed ktBacked, nsMap map[string]string) {
	t.Helper()
	for _, a := range applied {
		gr := a.gvr.GroupResource()
		want := backed[a.key()]
		if want == nil {
			t.Errorf("%s: not in the backup", a.key())
			continue
		}
		want = want.DeepCopy()
		mapNamespace(want, gr, nsMap)
		got := rtGet(t, cl, a.gvr, want.GetNamespace(), want.GetName())
		if got == nil {
			t.Errorf("%s: not restored", a.key())
			continue
		}
		if got.GetLabels()[layout.LabelRestoreName] == "" {
			t.Errorf("%s: no %s label: not restored by cairn", a.key(), layout.LabelRestoreName)
		}
		rtEqual(t, a.key(), gr, ktNormalize(want, gr), ktNormalize(got, gr))
	}
}

// ktCheckControllers checks that the restored workloads are whole again:
// the controllers adopted the restored objects instead of making a second
// set, and no restored pod is left without an owner.
func ktCheckControllers(t *testing.T, cl *kube.Clients, ns string) {
	t.Helper()
	ctx := context.Background()
	var count map[string]int
	var names []string
	want := map[string]int{"ReplicaSet": 2, "StatefulSet": 1, "Job": 1}
	deadline := time.Now().Add(10 * time.Second)
	for {
		pods, err := cl.Dynamic.Resource(gvrPod).Namespace(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		count, names = map[string]int{}, nil
		for _, p := range pods.Items {
			owner := "none"
			if c := metav1.GetControllerOfNoCopy(&p); c != nil {
				owner = c.Kind
			}
			count[owner]++
			names = append(names, p.GetName())
		}
		if maps.Equal(count, want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if !maps.Equal(count, want) {
		t.Errorf("pods in %s by controller %v, want %v: %v", ns, count, want, names)
	}
	rs, err := cl.Dynamic.Resource(schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "replicasets"}).Namespace(ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(rs.Items) != 1 {
		t.Errorf("replica sets in %s: %v, want 1 (%v)", ns, rs, err)
	}
}

// ktWantToken waits until the restored token Secret holds a token the
// cluster issued for the restored ServiceAccount (not the backed-up one).
func ktWantToken(t *testing.T, cl *kube.Clients, ns string, backed ktBacked) {
	t.Helper()
	old, _, _ := unstructured.NestedString(backed["secrets "+ktNS+"/build-robot-secret"].Object, "data", "token")
	if old == "" {
		t.Fatal("the backed-up token secret holds no token")
	}
	rtWaitFor(t, "a token for build-robot in "+ns, 30*time.Second, func() bool {
		sec := rtGet(t, cl, gvrSecret, ns, "build-robot-secret")
		sa := rtGet(t, cl, schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}, ns, "build-robot")
		if sec == nil || sa == nil {
			return false
		}
		tok, _, _ := unstructured.NestedString(sec.Object, "data", "token")
		return tok != "" && tok != old && sec.GetAnnotations()["kubernetes.io/service-account.uid"] == string(sa.GetUID())
	})
}

// ktStartCluster starts another control plane for the test.
func ktStartCluster(t *testing.T) *kube.Clients {
	t.Helper()
	needCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := cluster.Start(ctx, cluster.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	cl, err := kube.Connect(kube.ClientOptions{Kubeconfig: c.Kubeconfig, QPS: 1000, Burst: 2000})
	if err != nil {
		t.Fatal(err)
	}
	cl.Config.WarningHandler = rest.NoWarnings{}
	if cl.Dynamic, err = dynamic.NewForConfig(cl.Config); err != nil {
		t.Fatal(err)
	}
	// A cluster in use has settled: its controllers made their objects.
	for _, ns := range []string{"default", "kube-system", "kube-public"} {
		rtWaitFor(t, "the root CA config map in "+ns, 30*time.Second, func() bool {
			return rtGet(t, cl, gvrConfigMap, ns, "kube-root-ca.crt") != nil
		})
	}
	return cl
}

// ktInventory lists every object the cluster holds, by rtItems key.
func ktInventory(t *testing.T, cl *kube.Clients) map[string]bool {
	t.Helper()
	ctx := context.Background()
	d, err := kube.Discover(ctx, cl.Discovery)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, r := range d.Resources {
		if backup.SkipReason(r) != "" {
			continue
		}
		l, err := cl.Dynamic.Resource(r.GVR()).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatalf("list %s: %v", r.Dir(), err)
		}
		for _, o := range l.Items {
			out[r.Dir()+" "+path.Join(o.GetNamespace(), o.GetName())] = true
		}
	}
	return out
}

// TestKinds backs up a namespace holding most kinds of objects, and the
// whole cluster; deletes the namespace and the cluster-scoped objects it
// pulled in and restores them; restores the namespace under another name
// next to the original; and restores both backups into a new cluster.
func TestKinds(t *testing.T) {
	cl := rtConnect(t)
	ctx := context.Background()
	applied := ktSetup(t, cl)
	policy := ktApply(t, cl, "", ktPolicyYAML)
	t.Cleanup(func() {
		for _, p := range policy {
			_ = cl.Dynamic.Resource(p.gvr).Delete(context.Background(), p.obj.GetName(), metav1.DeleteOptions{})
		}
	})
	r := rtRepo(t)
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	nsSnap := ktBackup(t, cl, r, "kinds", layout.BackupSpec{IncludeNamespaces: []string{ktNS}})
	// The webhook is only in the backup of the whole cluster: here it
	// would block the restores into the namespace.
	webhook := ktApply(t, cl, "", ktWebhookYAML)[0]
	allSnap := ktBackup(t, cl, r, "everything", layout.BackupSpec{})
	rtDeleteAndWait(t, cl, rtRef{gvr: webhook.gvr, name: webhook.obj.GetName()})
	backed := ktRead(t, r, nsSnap)
	for _, a := range applied {
		if backed[a.key()] == nil {
			t.Errorf("%s is not in the backup", a.key())
		}
	}
	for _, want := range []string{"replicasets.apps " + ktNS, "pods " + ktNS, "controllerrevisions.apps " + ktNS, "persistentvolumeclaims " + ktNS + "/data-sessions-0"} {
		if !slices.ContainsFunc(slices.Collect(maps.Keys(backed)), func(k string) bool { return strings.HasPrefix(k, want) }) {
			t.Errorf("no %s… in the backup", want)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	t.Run("in-place", func(t *testing.T) {
		rtDeleteAndWait(t, cl, append([]rtRef{{gvr: gvrNamespace, name: ktNS}}, ktClusterObjects...)...)
		res := rtRestore(t, r, nsSnap, cl, RestoreOptions{Name: "kinds-back"})
		ktSummary(t, res)
		if res.Phase != layout.PhaseCompleted {
			t.Fatalf("phase %s: %v", res.Phase, res.Errors)
		}
		ktWantRestored(t, res, backed, ktNS, nil)
		ktWantRestored(t, res, backed, "", nil)
		ktCompare(t, cl, applied, backed, nil)
		ktCheckControllers(t, cl, ktNS)
		ktWantToken(t, cl, ktNS, backed)
	})

	t.Run("mapped", func(t *testing.T) {
		copyNS := ktNS + "-copy"
		m := map[string]string{ktNS: copyNS}
		before := rtGet(t, cl, gvrConfigMap, ktNS, "storefront-config")
		res := rtRestore(t, r, nsSnap, cl, RestoreOptions{Name: "kinds-copy", NamespaceMappings: m})
		ktSummary(t, res)
		if res.Phase != layout.PhaseCompleted {
			t.Fatalf("phase %s: %v", res.Phase, res.Errors)
		}
		ktWantRestored(t, res, backed, ktNS, m)
		items := rtItems(res)
		var inNS []ktApplied
		for _, a := range applied {
			if a.obj.GetNamespace() == "" && a.gvr.GroupResource() != grNamespace {
				rtWantAction(t, items, a.key(), ActionSkippedExists)
			} else {
				inNS = append(inNS, a)
			}
		}
		ktCompare(t, cl, inNS, backed, m)
		ktCheckControllers(t, cl, copyNS)
		// The original is untouched.
		if after := rtGet(t, cl, gvrConfigMap, ktNS, "storefront-config"); after == nil || after.GetResourceVersion() != before.GetResourceVersion() {
			t.Errorf("the original changed: %v", after)
		}
	})

	t.Run("migration", func(t *testing.T) {
		b := ktStartCluster(t)
		// The new cluster's platform gives pods without a class a
		// default priority: the restored pods' priorities, computed in
		// the old cluster, are not the new cluster's.
		ktApply(t, b, "", `
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata:
  name: kt-platform-default
value: 1000
globalDefault: true
description: "Default for workloads without a class."
`)
		existing := ktInventory(t, b)
		caBefore := rtGet(t, b, gvrConfigMap, "kube-system", "kube-root-ca.crt")

		// The whole cluster into the new one.
		res := rtRestore(t, r, allSnap, b, RestoreOptions{Name: "kinds-migrate"})
		ktSummary(t, res)
		if res.Phase != layout.PhaseCompleted {
			t.Errorf("phase %s", res.Phase)
		}
		items := rtItems(res)
		for _, it := range res.Items {
			k := it.Resource + " " + path.Join(it.Namespace, it.Name)
			switch {
			case it.Action == ActionFailed:
			case existing[k] && it.Action != ActionSkippedExists:
				t.Errorf("%s existed in the new cluster and was %s", k, it.Action)
			case existing[k]:
				o := rtGet(t, b, schema.GroupVersionResource{Group: splitGR(it.Resource).Group, Version: ktVersion(t, b, it.Resource), Resource: splitGR(it.Resource).Resource}, it.Namespace, it.Name)
				if o != nil && o.GetLabels()[layout.LabelRestoreName] != "" {
					t.Errorf("%s existed in the new cluster and was overwritten", k)
				}
			}
		}
		for _, k := range []string{"namespaces default", "namespaces kube-system", "namespaces kube-public",
			"serviceaccounts default/default", "serviceaccounts kube-system/default", "configmaps kube-system/kube-root-ca.crt",
			"configmaps kube-system/extension-apiserver-authentication", "services default/kubernetes",
			"clusterroles.rbac.authorization.k8s.io cluster-admin", "clusterroles.rbac.authorization.k8s.io admin",
			"clusterrolebindings.rbac.authorization.k8s.io cluster-admin", "apiservices.apiregistration.k8s.io v1.apps",
			"priorityclasses.scheduling.k8s.io system-node-critical"} {
			rtWantAction(t, items, k, ActionSkippedExists)
		}
		if ca := rtGet(t, b, gvrConfigMap, "kube-system", "kube-root-ca.crt"); ca.GetResourceVersion() != caBefore.GetResourceVersion() {
			t.Errorf("the new cluster's root CA config map was changed")
		}
		ktWantRestored(t, res, backed, ktNS, nil)
		ktCompare(t, b, applied, backed, nil)
		for _, p := range append(policy, webhook) {
			rtWantAction(t, items, p.key(), ActionCreated)
		}
		ktCheckControllers(t, b, ktNS)
		ktWantToken(t, b, ktNS, backed)
		for _, it := range res.Items {
			if it.Resource == grString(grClusterTrustBundle) && it.Action == ActionCreated {
				t.Errorf("the old cluster's trust bundle %s was restored", it.Name)
			}
		}
		// The webhook's service does not run here; let the next restore in.
		rtDeleteAndWait(t, b, rtRef{gvr: webhook.gvr, name: webhook.obj.GetName()})

		// The namespace backup, next to it under another name: the
		// cluster-scoped objects it needs are there now.
		moved := ktNS + "-moved"
		m := map[string]string{ktNS: moved}
		res = rtRestore(t, r, nsSnap, b, RestoreOptions{Name: "kinds-moved", NamespaceMappings: m})
		ktSummary(t, res)
		if res.Phase != layout.PhaseCompleted {
			t.Errorf("phase %s", res.Phase)
		}
		ktWantRestored(t, res, backed, ktNS, m)
		var inNS []ktApplied
		for _, a := range applied {
			if a.obj.GetNamespace() != "" || a.gvr.GroupResource() == grNamespace {
				inNS = append(inNS, a)
			}
		}
		ktCompare(t, b, inNS, backed, m)
	})
}

// ktVersion is the version the cluster serves a "<resource>.<group>" at.
func ktVersion(t *testing.T, cl *kube.Clients, dir string) string {
	t.Helper()
	d, err := kube.Discover(context.Background(), cl.Discovery)
	if err != nil {
		t.Fatal(err)
	}
	r, ok := d.Find(dir)
	if !ok {
		t.Fatalf("%s not served", dir)
	}
	return r.Version
}

func TestMadeByRestoredOwner(t *testing.T) {
	owners := map[ownerKey]bool{{grJob, "ns", "migrate"}: true, {grCronJob, "ns", "report"}: true}
	item := func(gr schema.GroupResource, ns, owner string) *restoreItem {
		o := obj(t, "metadata: {name: x, namespace: "+ns+", "+owner+"}")
		return &restoreItem{m: Manifest{Namespace: ns, Name: "x"}, gr: gr, src: o}
	}
	ref := func(apiVersion, kind, name string, controller bool) string {
		return fmt.Sprintf("ownerReferences: [{apiVersion: %q, kind: %s, name: %s, uid: u, controller: %v}]", apiVersion, kind, name, controller)
	}
	for _, c := range []struct {
		it   *restoreItem
		want bool
	}{
		{item(grPod, "ns", ref("batch/v1", "Job", "migrate", true)), true},
		{item(grPod, "other", ref("batch/v1", "Job", "migrate", true)), false}, // that Job is not restored
		{item(grPod, "ns", ref("batch/v1", "Job", "other", true)), false},
		{item(grPod, "ns", ref("batch/v1", "Job", "migrate", false)), false}, // not its controller
		{item(grPod, "ns", ref("example.com/v1", "Job", "migrate", true)), false},
		{item(grPod, "ns", ref("apps/v1", "ReplicaSet", "migrate", true)), false}, // adopted by its ReplicaSet
		{item(grPod, "ns", "labels: {}"), false},
		{item(grJob, "ns", ref("batch/v1", "CronJob", "report", true)), true},
		{item(grJob, "ns", ref("batch/v1", "CronJob", "migrate", true)), false},
		{item(grConfigMap, "ns", ref("batch/v1", "Job", "migrate", true)), false},
	} {
		if got := madeByRestoredOwner(c.it, owners); got != c.want {
			t.Errorf("%s with %v: %v, want %v", c.it.gr, c.it.src.GetOwnerReferences(), got, c.want)
		}
	}
}

// ktWaitCRD waits until a CRD is established and served by discovery.
func ktWaitCRD(t *testing.T, cl *kube.Clients, name string) {
	t.Helper()
	gvr := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	rtWaitFor(t, "CRD "+name+" established", 30*time.Second, func() bool {
		crd, err := cl.Dynamic.Resource(gvr).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
		for _, c := range conds {
			if m, ok := c.(map[string]any); ok && m["type"] == "Established" && m["status"] == "True" {
				return true
			}
		}
		return false
	})
	rtWaitFor(t, "CRD "+name+" discovered", 30*time.Second, func() bool {
		d, err := kube.Discover(context.Background(), cl.Discovery)
		if err != nil {
			return false
		}
		_, ok := d.Find(name)
		return ok
	})
}

func ktKeys(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}
