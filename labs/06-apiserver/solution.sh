#!/bin/bash
# Lab 06, the reference answer: etcd, the API server on it, objects made with kubectl and
# curl, a 409 Conflict, and a resumed watch. Idempotent; `solution.sh cleanup` undoes it.
# Needs: kthw, etcd (Debian etcd-server), kubectl, curl.
set -euo pipefail

KTHW=${KTHW:-kthw}
STATE=${KTHW_HOME:+$KTHW_HOME/lib}
LAB=${STATE:-/var/lib/kthw}/lab
API=${KTHW_LAB06_API:-http://127.0.0.1:8080}
ETCD=${KTHW_LAB06_ETCD:-http://127.0.0.1:2379}
ETCD_PEER=${KTHW_LAB06_ETCD_PEER:-http://127.0.0.1:2380}
export KUBECONFIG=$LAB/06-kubeconfig
mkdir -p "$LAB"

stop() { # stop the process in pid file $1, if it runs
    if [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; then kill "$(cat "$1")"; sleep 0.5; fi
    rm -f "$1"
}

if [ "${1:-}" = cleanup ]; then
    stop "$LAB/06-apiserver.pid"
    stop "$LAB/06-etcd.pid"
    rm -rf "$LAB/06-etcd" "$LAB"/06-*.json "$LAB"/06-*.jsonl "$LAB"/06-*.yaml "$LAB"/06-*.log "$KUBECONFIG"
    exit 0
fi

wait_for() { # wait until URL $1 answers: up to two minutes, as in an emulated VM etcd can
    # answer /version some 40 s before it has elected itself leader and serves requests
    for _ in $(seq 1200); do curl -sf "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "nothing answers at $1" >&2; exit 1
}

# Step 1: etcd, then the API server on it (each in the background, with a pid file).
if ! curl -sf "$ETCD/version" >/dev/null 2>&1; then
    etcd --name lab06 --data-dir "$LAB/06-etcd" --listen-client-urls "$ETCD" --advertise-client-urls "$ETCD" \
        --listen-peer-urls "$ETCD_PEER" --initial-advertise-peer-urls "$ETCD_PEER" \
        --initial-cluster "lab06=$ETCD_PEER" >"$LAB/06-etcd.log" 2>&1 &
    echo $! >"$LAB/06-etcd.pid"
    wait_for "$ETCD/version"
fi
if ! curl -sf "$API/healthz" >/dev/null 2>&1; then
    "$KTHW" apiserver --store "etcd:$ETCD" --listen "${API#http://}" >"$LAB/06-apiserver.log" 2>&1 &
    echo $! >"$LAB/06-apiserver.pid"
    wait_for "$API/healthz"
fi

# Step 2: a kubeconfig for kubectl.
cat >"$KUBECONFIG" <<CONFIG
apiVersion: v1
kind: Config
clusters: [{name: lab, cluster: {server: "$API"}}]
users: [{name: me, user: {}}]
contexts: [{name: lab, context: {cluster: lab, user: me, namespace: lab}}]
current-context: lab
CONFIG

# Step 3: a namespace and a pod, with kubectl.
# (`kubectl create namespace lab` sends protobuf, which our server does not read: use a file.)
printf 'apiVersion: v1\nkind: Namespace\nmetadata: {name: lab}\n' >"$LAB/06-namespace.yaml"
kubectl apply -f "$LAB/06-namespace.yaml"
cat >"$LAB/06-web.yaml" <<POD
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: lab, labels: {app: web}}
spec:
  containers: [{name: nginx, image: "nginx:1.25"}]
POD
kubectl apply -f "$LAB/06-web.yaml"

# Step 4: a configmap with curl, then two updates, each with the resourceVersion just read.
CMS=$API/api/v1/namespaces/lab/configmaps
curl -s -X POST "$CMS" -H 'Content-Type: application/json' \
    -d '{"metadata":{"name":"counter"},"data":{"n":"1"}}' >/dev/null
for n in 2 3; do
    rv=$(kubectl get configmap counter -o jsonpath='{.metadata.resourceVersion}')
    curl -sf -X PUT "$CMS/counter" -H 'Content-Type: application/json' \
        -d "{\"metadata\":{\"name\":\"counter\",\"resourceVersion\":\"$rv\"},\"data\":{\"n\":\"$n\"}}" >/dev/null
done

# Step 5: a stale write: read, let someone else write, then PUT with the old version.
old=$(kubectl get configmap counter -o jsonpath='{.metadata.resourceVersion}')
kubectl patch configmap counter --type=merge -p '{"data":{"by":"someone-else"}}' >/dev/null
curl -s -X PUT "$CMS/counter" -H 'Content-Type: application/json' \
    -d "{\"metadata\":{\"name\":\"counter\",\"resourceVersion\":\"$old\"},\"data\":{\"n\":\"lost\"}}" \
    >"$LAB/06-conflict.json"

# Step 6: note the version, change counter, then watch from the noted version.
from=$(kubectl get configmap counter -o jsonpath='{.metadata.resourceVersion}')
kubectl patch configmap counter --type=merge -p "{\"data\":{\"n\":\"$RANDOM\"}}" >/dev/null
curl -sN "$CMS?watch=true&resourceVersion=$from&timeoutSeconds=1" >"$LAB/06-watch.jsonl"
echo "lab 06 done: run \`kthw lab check 06\`"
