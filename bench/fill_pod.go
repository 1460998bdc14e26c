package bench

import (
	"encoding/json"
	"fmt"
	"time"
)

// podKey is where kube-apiserver would keep pod i of a fill run: pods
// spread over namespaces of a hundred.
func podKey(i int) string {
	return fmt.Sprintf("/registry/pods/fill-%03d/web-%07d", i/100, i)
}

// podObject is pod i as a Pod object shaped like what kube-apiserver stores
// for a Deployment's pod: nested metadata, one container with probes, env,
// mounts and resources, and a status. running selects the status: Pending
// and scheduled as first written (about 2.2 KB of JSON), or Running and
// Ready as a kubelet's status update leaves it (about 2.8 KB). The same i
// always gives the same bytes.
func podObject(i int, running bool) ([]byte, error) {
	ns, name := fmt.Sprintf("fill-%03d", i/100), fmt.Sprintf("web-%07d", i)
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond)
	stamp := created.Format(time.RFC3339)
	uid := fmt.Sprintf("5f0c%04x-%04x-4e1b-9a2d-%012x", i>>16&0xffff, i&0xffff, i*7919)
	pod := map[string]any{
		"apiVersion": "v1",
		"kind":       "Pod",
		"metadata": map[string]any{
			"name": name, "namespace": ns, "uid": uid,
			"generateName":      "web-7d9c6b5f4-",
			"creationTimestamp": stamp,
			"labels":            map[string]any{"app": "web", "pod-template-hash": "7d9c6b5f4", "tier": "frontend", "shard": fmt.Sprint(i % 16)},
			"annotations":       map[string]any{"kubectl.kubernetes.io/restartedAt": stamp, "prometheus.io/scrape": "true", "prometheus.io/port": "9090"},
			"ownerReferences": []any{map[string]any{
				"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9c6b5f4",
				"uid": "0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d", "controller": true, "blockOwnerDeletion": true,
			}},
		},
		"spec":   podSpec(i),
		"status": podStatus(i, running, stamp),
	}
	data, err := json.Marshal(pod)
	if err != nil {
		return nil, fmt.Errorf("bench: pod %d: %w", i, err)
	}
	return data, nil
}

func podSpec(i int) map[string]any {
	return map[string]any{
		"nodeName":                      fmt.Sprintf("edge-node-%03d", i%50),
		"restartPolicy":                 "Always",
		"dnsPolicy":                     "ClusterFirst",
		"schedulerName":                 "default-scheduler",
		"serviceAccountName":            "default",
		"terminationGracePeriodSeconds": 30,
		"securityContext":               map[string]any{"runAsNonRoot": true, "fsGroup": 2000},
		"tolerations": []any{
			map[string]any{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
		},
		"volumes": []any{
			map[string]any{"name": "config", "configMap": map[string]any{"name": "web-config", "defaultMode": 420}},
			map[string]any{"name": "kube-api-access", "projected": map[string]any{"defaultMode": 420, "sources": []any{
				map[string]any{"serviceAccountToken": map[string]any{"expirationSeconds": 3607, "path": "token"}},
			}}},
		},
		"containers": []any{map[string]any{
			"name": "web", "image": "registry.example.com/web:1.25.3", "imagePullPolicy": "IfNotPresent",
			"args":  []any{"--listen=:8080", "--metrics=:9090", fmt.Sprintf("--shard=%d", i%16)},
			"ports": []any{map[string]any{"name": "http", "containerPort": 8080, "protocol": "TCP"}, map[string]any{"name": "metrics", "containerPort": 9090, "protocol": "TCP"}},
			"env": []any{
				map[string]any{"name": "POD_NAME", "valueFrom": map[string]any{"fieldRef": map[string]any{"apiVersion": "v1", "fieldPath": "metadata.name"}}},
				map[string]any{"name": "LOG_LEVEL", "value": "info"},
			},
			"resources":      map[string]any{"requests": map[string]any{"cpu": "100m", "memory": "128Mi"}, "limits": map[string]any{"cpu": "500m", "memory": "256Mi"}},
			"readinessProbe": map[string]any{"httpGet": map[string]any{"path": "/healthz", "port": 8080}, "periodSeconds": 10},
			"volumeMounts": []any{
				map[string]any{"name": "config", "mountPath": "/etc/web", "readOnly": true},
				map[string]any{"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true},
			},
			"terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
		}},
	}
}

func podStatus(i int, running bool, stamp string) map[string]any {
	if !running {
		return map[string]any{
			"phase": "Pending", "qosClass": "Burstable",
			"conditions": []any{map[string]any{"type": "PodScheduled", "status": "True", "lastTransitionTime": stamp}},
		}
	}
	cond := func(t string) map[string]any {
		return map[string]any{"type": t, "status": "True", "lastTransitionTime": stamp}
	}
	return map[string]any{
		"phase": "Running", "qosClass": "Burstable", "startTime": stamp,
		"hostIP": fmt.Sprintf("10.20.%d.%d", i%50/250, i%50+10), "podIP": fmt.Sprintf("10.244.%d.%d", i/250%250, i%250+2),
		"conditions": []any{cond("Initialized"), cond("Ready"), cond("PodScheduled")},
		"containerStatuses": []any{map[string]any{
			"name": "web", "ready": true, "started": true, "restartCount": 0,
			"image": "registry.example.com/web:1.25.3", "imageID": "registry.example.com/web@sha256:4b1d6e0f6f3c2a9e8d7c6b5a4938271",
			"containerID": fmt.Sprintf("containerd://%064x", uint64(i)*0x9e3779b97f4a7c15),
			"state":       map[string]any{"running": map[string]any{"startedAt": stamp}},
		}},
	}
}
