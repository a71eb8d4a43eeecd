"""The official Kubernetes Python client against `kthw apiserver` (chapter 6).

Run by tests/apiserver_python.rs as `python3 apiserver_client.py KUBECONFIG`.
It lists, creates, reads, replaces (with a stale resourceVersion: 409), watches, and
deletes pods; every step prints one line, and any failure raises.
"""
import sys
import threading
import time

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

config.load_kube_config(config_file=sys.argv[1])
v1 = client.CoreV1Api()


def pod(name):
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels={"app": "py"}),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")]),
    )


# list: strict models, so every stored pod must deserialize.
assert v1.list_namespaced_pod("default").items == []
print("list ok")

# create without kind/apiVersion in the body (the client leaves them out).
created = v1.create_namespaced_pod("default", pod("py-1"))
assert created.metadata.uid and created.metadata.resource_version
print("create ok")

read = v1.read_namespaced_pod("py-1", "default")
assert read.spec.containers[0].image == "busybox"

# replace with a stale resourceVersion: 409 Conflict.
read.metadata.labels = {"app": "py", "v": "2"}
v1.replace_namespaced_pod("py-1", "default", read)
read.metadata.labels = {"app": "py", "v": "3"}
try:
    v1.replace_namespaced_pod("py-1", "default", read)
    raise AssertionError("a stale replace must fail")
except ApiException as err:
    assert err.status == 409, err
print("conflict ok")

# patch: the client sends a strategic merge patch.
patched = v1.patch_namespaced_pod("py-1", "default", {"metadata": {"labels": {"patched": "yes"}}})
assert patched.metadata.labels["patched"] == "yes"
print("patch ok")

# watch: initial ADDED for what exists, then live events, split on newlines.
seen = []


def make_changes():
    time.sleep(0.5)
    v1.create_namespaced_pod("default", pod("py-2"))
    v1.delete_namespaced_pod("py-2", "default")


threading.Thread(target=make_changes).start()
w = watch.Watch()
for event in w.stream(v1.list_namespaced_pod, "default", timeout_seconds=10):
    seen.append((event["type"], event["object"].metadata.name))
    if event["type"] == "DELETED":
        w.stop()
assert seen[0] == ("ADDED", "py-1"), seen
assert ("ADDED", "py-2") in seen and seen[-1] == ("DELETED", "py-2"), seen
print("watch ok")

# delete returns the pod (a Status here would break this client's model).
deleted = v1.delete_namespaced_pod("py-1", "default")
assert deleted.metadata.name == "py-1"
try:
    v1.read_namespaced_pod("py-1", "default")
    raise AssertionError("the pod must be gone")
except ApiException as err:
    assert err.status == 404, err
print("delete ok")
