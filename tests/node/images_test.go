package node

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/deploy/image"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TestCairnImage runs `cairn version` in a pod of the image `make image`
// builds, imported into the node and never pulled.
func TestCairnImage(t *testing.T) {
	n, cs := needNode(t)
	ctx := context.Background()
	ref, err := n.ImportCairn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	version, err := image.BinaryVersion(filepath.Join(n.Dir, "images", "cairn"))
	if err != nil {
		t.Fatal(err)
	}
	if ref != image.CairnRef(version) {
		t.Errorf("image %s, want %s", ref, image.CairnRef(version))
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "cairn-version", Namespace: "default"},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{{Name: "cairn", Image: ref, ImagePullPolicy: corev1.PullNever, Args: []string{"version"}}},
		},
	}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := waitPod(t, cs, "default", pod.Name, func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
	})
	logs, err := cs.CoreV1().Pods("default").GetLogs(pod.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
	if p.Status.Phase != corev1.PodSucceeded || err != nil || !strings.HasPrefix(string(logs), "cairn "+version+" ") {
		t.Fatalf("pod %s: %v: log %q", p.Status.Phase, err, logs)
	}
}

// TestLocalVolumeFileServer binds a claim to a local PV, writes into it
// from an init container and serves it with the file server: the file is
// in the PV's directory on the host, the kubelet mounted it where the
// agent looks, and the host reaches the pod directly and through the API
// server's pod and service proxies.
func TestLocalVolumeFileServer(t *testing.T) {
	n, cs := needNode(t)
	ctx := context.Background()
	ref, err := n.ImportFileServer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pvs, err := n.LocalVolumes(ctx, cs, 2, "1Gi")
	if err != nil {
		t.Fatal(err)
	}
	class := LocalStorageClass
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "web-data", Namespace: "default"},
		Spec: corev1.PersistentVolumeClaimSpec{
			StorageClassName: &class,
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("100Mi")}},
		},
	}
	if _, err := cs.CoreV1().PersistentVolumeClaims("default").Create(ctx, pvc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "web"}
	mount := []corev1.VolumeMount{{Name: "html", MountPath: FileServerRoot}}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", Labels: labels},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "write", Image: BusyboxImage, ImagePullPolicy: corev1.PullNever,
				Command: []string{"sh", "-c", "echo served-from-pv > " + FileServerRoot + "/index.html"}, VolumeMounts: mount}},
			Containers: []corev1.Container{{Name: "web", Image: ref, ImagePullPolicy: corev1.PullNever, VolumeMounts: mount,
				Ports: []corev1.ContainerPort{{ContainerPort: FileServerPort}}}},
			Volumes: []corev1.Volume{{Name: "html", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: pvc.Name}}}},
			TerminationGracePeriodSeconds: new(int64),
		},
	}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec:       corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(FileServerPort)}}},
	}
	if _, err := cs.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := waitPod(t, cs, "default", "web", func(p *corev1.Pod) bool {
		return running(p) && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].Ready
	})

	claim, err := cs.CoreV1().PersistentVolumeClaims("default").Get(ctx, pvc.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var dir string
	for _, pv := range pvs {
		if pv.Name == claim.Spec.VolumeName {
			dir = LocalVolumeDir(pv)
		}
	}
	if dir == "" {
		t.Fatalf("claim bound to %q, not one of the node's local volumes", claim.Spec.VolumeName)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "index.html")); err != nil || string(b) != "served-from-pv\n" {
		t.Errorf("PV directory: %v %q", err, b)
	}
	mounted := filepath.Join(n.RootDir, "pods", string(p.UID), "volumes", "kubernetes.io~local-volume", claim.Spec.VolumeName, "index.html")
	if b, err := os.ReadFile(n.HostPath(mounted)); err != nil || string(b) != "served-from-pv\n" {
		t.Errorf("kubelet's mount: %v %q", err, b)
	}

	get := func(url string) string {
		t.Helper()
		client := &http.Client{Timeout: 5 * time.Second}
		// Ready means started (no probe): the server may not listen yet
		// when the first request comes (seen once under CI load).
		resp, err := client.Get(url)
		for deadline := time.Now().Add(15 * time.Second); err != nil && time.Now().Before(deadline); {
			time.Sleep(200 * time.Millisecond)
			resp, err = client.Get(url)
		}
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.Status + " " + string(b)
	}
	if got := get("http://" + p.Status.PodIP + ":" + strconv.Itoa(FileServerPort) + "/"); got != "200 OK served-from-pv\n" {
		t.Errorf("from the host: %q", got)
	}
	for _, path := range []string{
		"/api/v1/namespaces/default/pods/web:" + strconv.Itoa(FileServerPort) + "/proxy/",
		"/api/v1/namespaces/default/services/web:80/proxy/",
	} {
		var b []byte
		for i := 0; ; i++ { // the service's endpoints follow the pod's readiness
			b, err = cs.CoreV1().RESTClient().Get().AbsPath(path).DoRaw(ctx)
			if (err == nil && string(b) == "served-from-pv\n") || i == 30 {
				break
			}
			time.Sleep(300 * time.Millisecond)
		}
		if err != nil || string(b) != "served-from-pv\n" {
			t.Errorf("GET %s: %v %q", path, err, b)
		}
	}
	// containerd writes the container's output to the log file
	// asynchronously: under load the lines arrive after the responses.
	var logs []byte
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		logs, _ = cs.CoreV1().Pods("default").GetLogs("web", &corev1.PodLogOptions{Container: "web"}).DoRaw(ctx)
		if strings.Contains(string(logs), "GET / 200") || time.Now().After(deadline) {
			break
		}
	}
	if !strings.Contains(string(logs), "GET / 200") {
		t.Errorf("file server did not log the requests: %q", logs)
	}
}
