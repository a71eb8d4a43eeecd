#!/usr/bin/env bash
# Lab 04, the reference answer: import lab04/busybox from /bin/busybox, build lab04/web
# from a Dockerfile, run it as container lab04 (64M, -p 8004:80), fetch a page, exec `ps`
# into it, and stop a second container, lab04-stop.
#
#   solution.sh           do the lab (again: it is idempotent)
#   solution.sh cleanup   remove the containers, the images and the files
#
# KTHW names the kthw binary (default: kthw on PATH); KTHW_HOME moves the state folder.
# LAB04_PORT changes the host port (default 8004, not 8080: lab 06 serves the API on
# 127.0.0.1:8080, and our DNAT rule would catch its connections), for a machine where 8004 is taken.
set -euo pipefail

KTHW=${KTHW:-kthw}
PORT=${LAB04_PORT:-8004}
lab_dir=$("$KTHW" lab dir)   # /var/lib/kthw/lab, or under $KTHW_HOME
src="$lab_dir/04-busybox"
ctx="$lab_dir/04-web"

if [[ "${1:-}" == cleanup ]]; then
    "$KTHW" rm -f lab04 >/dev/null 2>&1 || true
    "$KTHW" rm -f lab04-stop >/dev/null 2>&1 || true
    "$KTHW" image rm lab04/web >/dev/null 2>&1 || true
    "$KTHW" image rm lab04/busybox >/dev/null 2>&1 || true
    "$KTHW" image prune >/dev/null 2>&1 || true
    rm -rf "$src" "$ctx"
    exit 0
fi

# Step 1: the base image (once).
if ! "$KTHW" image inspect lab04/busybox >/dev/null 2>&1; then
    mkdir -p "$src/bin" "$src/etc" "$src/tmp"
    cp /bin/busybox "$src/bin/"
    for applet in $(/bin/busybox --list); do
        [[ "$applet" == busybox ]] || ln -sf busybox "$src/bin/$applet"
    done
    "$KTHW" image import "$src" lab04/busybox
fi

# Step 2: the web image, from a Dockerfile (a second build is all cache hits).
mkdir -p "$ctx"
echo "hello from lab 04" > "$ctx/index.html"
cat > "$ctx/Dockerfile" <<'EOF'
FROM lab04/busybox
RUN mkdir -p /www && echo "built by kthw build" > /www/built.txt
COPY index.html /www/index.html
EXPOSE 80
CMD ["httpd", "-f", "-v", "-p", "80", "-h", "/www"]
EOF
"$KTHW" build -t lab04/web "$ctx"

# Step 3: the web server, detached (once; a stopped one is replaced).
# (Not `inspect | grep -q`: grep's early exit would fail the pipe under pipefail.)
running() { [[ "$("$KTHW" inspect "$1" 2>/dev/null)" == *'"Running": true'* ]]; }
if ! running lab04; then
    "$KTHW" rm -f lab04 >/dev/null 2>&1 || true
    "$KTHW" run -d --name lab04 --memory 64M -p "$PORT:80" lab04/web
fi

# Steps 3 and 7: fetch the page (httpd logs the request), retrying while httpd starts
# (up to half a minute: in an emulated VM, starting takes a while).
for _ in $(seq 300); do
    if curl -fsS --max-time 2 "http://127.0.0.1:$PORT/" >/dev/null 2>&1; then break; fi
    sleep 0.1
done
curl -fsS --max-time 2 "http://127.0.0.1:$PORT/"

# Step 8: exec `ps` inside the container.
"$KTHW" exec lab04 sh -c 'ps > /www/ps.txt'

# Step 9: a second container, stopped; sleep as PID 1 ignores SIGTERM, so it is killed.
"$KTHW" rm -f lab04-stop >/dev/null 2>&1 || true
"$KTHW" run -d --name lab04-stop lab04/busybox sleep 3600
"$KTHW" stop -t 2 lab04-stop
"$KTHW" ps -a
