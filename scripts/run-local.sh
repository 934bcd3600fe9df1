#!/usr/bin/env bash
# Builds Strait (Release, into build/) and starts it locally on the embedded SQLite store:
# one strait-cp, one strait-dp, a small echo server as the upstream, and two example
# routes to it: TLS terminated on 127.0.0.1:5555 for the SNI `tlsbin-example`, and plain
# TCP on 127.0.0.1:5556 (the echo server is on 127.0.0.1:9000). Everything lives in
# ./strait-local/ (certificates, configuration, prefixes, logs). Idempotent: a second run
# restarts what the first one started, keeping the configuration in the SQLite store.
# Stop with scripts/stop-local.sh.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
local_dir="$top/strait-local"
build="$top/build"
admin=127.0.0.1:8001
status=127.0.0.1:8007

say() { printf '==> %s\n' "$*"; }
die() { printf 'run-local: %s\n' "$*" >&2; exit 1; }

# 1. packages and build
bash scripts/deps.sh
say "building Release into build/"
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j2 --target strait-cp strait-dp
cp_bin="$build/control-plane/strait-cp"
dp_bin="$build/data-plane/strait-dp"

# 2. stop a previous run, then lay out strait-local/
bash scripts/stop-local.sh >/dev/null 2>&1 || true
mkdir -p "$local_dir/cp" "$local_dir/dp"
if [ ! -s "$local_dir/cluster.crt" ] || [ ! -s "$local_dir/cluster.key" ]; then
    rm -f "$local_dir/cluster.crt" "$local_dir/cluster.key"
    say "generating the cluster certificate pair"
    "$cp_bin" cluster gen_cert "$local_dir/cluster.crt" "$local_dir/cluster.key"
fi

cat >"$local_dir/cp.conf" <<CONF
# control plane, written by scripts/run-local.sh
admin_listen = $admin
cluster_listen = 127.0.0.1:8005
cluster_cert = $local_dir/cluster.crt
cluster_cert_key = $local_dir/cluster.key
log_level = notice
CONF

cat >"$local_dir/dp.conf" <<CONF
# data plane, written by scripts/run-local.sh
cluster_control_plane = 127.0.0.1:8005
cluster_cert = $local_dir/cluster.crt
cluster_cert_key = $local_dir/cluster.key
stream_listen = 127.0.0.1:5555 ssl, 127.0.0.1:5556, 127.0.0.1:5557
status_listen = $status
log_level = info
CONF

# 3. start the echo upstream, the CP and the DP in the background
start() { # name pidfile logfile command...
    local name=$1 pidfile=$2 logfile=$3
    shift 3
    setsid "$@" </dev/null >>"$logfile" 2>&1 &
    echo $! >"$pidfile"
    say "started $name (pid $!, log ${logfile#"$top"/})"
}

wait_http() { # url what [seconds]
    local url=$1 what=$2 limit=${3:-30} i
    for ((i = 0; i < limit * 10; i++)); do
        if curl -fs -o /dev/null --max-time 2 "$url"; then
            return 0
        fi
        sleep 0.1
    done
    die "$what did not answer at $url within ${limit}s; see the logs in strait-local/"
}

start "echo server" "$local_dir/echo.pid" "$local_dir/echo.log" \
    /usr/bin/python3 "$top/scripts/echo_server.py" 127.0.0.1 9000
start strait-cp "$local_dir/cp/strait-cp.pid" "$local_dir/cp.log" \
    "$cp_bin" start -c "$local_dir/cp.conf" -p "$local_dir/cp"
wait_http "http://$admin/status" "strait-cp"

# 4. the example service and route, by name with PUT (idempotent)
api() { # method path curl-args...
    local method=$1 path=$2 out code
    shift 2
    out=$(curl -s -X "$method" -w '\n%{http_code}' "http://$admin$path" "$@")
    code=${out##*$'\n'}
    out=${out%$'\n'*}
    case $code in
    200 | 201) printf '%s' "$out" ;;
    *) die "$method $path answered $code: $out" ;;
    esac
}
svc=$(api PUT /services/example -d url=tcp://127.0.0.1:9000)
svc_id=$(printf '%s' "$svc" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
api PUT /routes/example -d protocols=tcp -d 'destinations[1].port=5556' \
    -d "service.id=$svc_id" >/dev/null
say "example: service 'example' (tcp://127.0.0.1:9000), route 'example' (port 5556)"

# the TLS example: a certificate for the SNI tlsbin-example, and a tls route for it
if [ ! -s "$local_dir/tlsbin-example.crt" ] || [ ! -s "$local_dir/tlsbin-example.key" ]; then
    say "generating a self-signed certificate for tlsbin-example"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 \
        -subj /CN=tlsbin-example -addext subjectAltName=DNS:tlsbin-example \
        -keyout "$local_dir/tlsbin-example.key" -out "$local_dir/tlsbin-example.crt" 2>/dev/null
fi
api PUT /certificates/tlsbin-example --data-urlencode "cert@$local_dir/tlsbin-example.crt" \
    --data-urlencode "key@$local_dir/tlsbin-example.key" >/dev/null
api PUT /routes/tlsbin-example -d protocols=tls -d snis=tlsbin-example \
    -d "service.id=$svc_id" >/dev/null
say "example: route 'tlsbin-example' (TLS on port 5555, SNI tlsbin-example) -> service 'example'"

start strait-dp "$local_dir/dp/strait-dp.pid" "$local_dir/dp.log" \
    "$dp_bin" start -c "$local_dir/dp.conf" -p "$local_dir/dp"
wait_http "http://$status/status/ready" "strait-dp (ready)"

# 5. prove the examples work, then say what to type
reply=$(/usr/bin/python3 - <<'PY'
import socket
s = socket.create_connection(("127.0.0.1", 5556), timeout=5)
s.sendall(b"hello\n")
s.shutdown(socket.SHUT_WR)
data = b""
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
print(data.decode().strip())
PY
) || true
[ "$reply" = hello ] || die "the example route did not echo (got '$reply'); see strait-local/*.log"
reply=$(/usr/bin/python3 - <<'PY'
import socket, ssl
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
with socket.create_connection(("127.0.0.1", 5555), timeout=5) as raw:
    with ctx.wrap_socket(raw, server_hostname="tlsbin-example") as s:
        s.sendall(b"hello tls\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
print(data.decode().strip())
PY
) || true
[ "$reply" = "hello tls" ] || die "the TLS example did not echo (got '$reply'); see strait-local/*.log"

cat <<MSG

Strait is running:
  control plane  admin API http://$admin   (strait-local/cp.log)
  data plane     stream 127.0.0.1:5555 (ssl), 127.0.0.1:5556, 127.0.0.1:5557,
                 status http://$status
                 (strait-local/dp.log)
  echo upstream  127.0.0.1:9000            (strait-local/echo.log)

Try the TLS example (TLS terminated on 127.0.0.1:5555 -> echo server; type a line):
  openssl s_client -connect localhost:5555 -servername tlsbin-example
Try the plain example route (127.0.0.1:5556 -> echo server):
  printf 'hello\n' | nc -q1 127.0.0.1 5556
or, without nc:
  python3 -c 'import socket; s=socket.create_connection(("127.0.0.1",5556)); s.sendall(b"hello\n"); print(s.recv(100))'

Look around:
  curl -s localhost:8001/services
  curl -s localhost:8001/routes
  curl -s localhost:8001/clustering/data-planes
  curl -s localhost:8007/status

The README's tour adds a route on 127.0.0.1:5557. Stop everything with:
  scripts/stop-local.sh
MSG
