package restore

// rtAppYAML is a namespace with a bit of everything, plus the
// cluster-scoped objects it uses.
const rtAppYAML = `
apiVersion: v1
kind: Namespace
metadata: {name: rt-app, labels: {team: web}}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: rt-fast}
provisioner: example.com/none
reclaimPolicy: Retain
volumeBindingMode: Immediate
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: rt-pv}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: rt-fast
  hostPath: {path: /tmp/rt-pv}
  claimRef: {namespace: rt-app, name: data}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: rt-app}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: rt-fast
  resources: {requests: {storage: 1Gi}}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: rtwidgets.rt.example.com}
spec:
  group: rt.example.com
  scope: Namespaced
  names: {plural: rtwidgets, singular: rtwidget, kind: RtWidget, listKind: RtWidgetList}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
          status: {type: object, x-kubernetes-preserve-unknown-fields: true}
---
apiVersion: rt.example.com/v1
kind: RtWidget
metadata: {name: w1, namespace: rt-app, labels: {tier: web}}
spec: {size: 3}
status: {ready: true}
---
apiVersion: rt.example.com/v1
kind: RtWidget
metadata: {name: w2, namespace: rt-app}
spec: {size: 5}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: app, namespace: rt-app}
---
apiVersion: v1
kind: Secret
metadata: {name: app-token, namespace: rt-app, annotations: {kubernetes.io/service-account.name: app}}
type: kubernetes.io/service-account-token
---
apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: rt-app, labels: {tier: web}}
type: Opaque
stringData: {password: hunter2}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: rt-app, labels: {tier: web}}
data: {mode: production}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: other, namespace: rt-app, labels: {tier: db}}
data: {x: "1"}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader, namespace: rt-app}
rules: [{apiGroups: [""], resources: [configmaps], verbs: [get, list]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: app-reads, namespace: rt-app}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}
subjects: [{kind: ServiceAccount, name: app, namespace: rt-app}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: rt-app, labels: {tier: web}}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      initContainers: [{name: init, image: "registry.old/team/init:1"}]
      containers: [{name: web, image: "registry.old/team/web:1.0", ports: [{containerPort: 8080}]}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: rt-app}
spec:
  serviceName: db-headless
  replicas: 1
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: "registry.old/team/db:2"}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: rt-app}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web-np, namespace: rt-app}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, nodePort: 30111}]
---
apiVersion: v1
kind: Service
metadata: {name: db-headless, namespace: rt-app}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{port: 5432}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: rt-app}
spec:
  rules:
  - host: web.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
`
