#!/bin/bash
# The image's HEALTHCHECK (issue 17), without curl: is this container's strait-dp serving
# /status (200), or its strait-cp's admin API answering HTTP? The address comes from the
# process itself (its STRAIT_* environment, then its -c file, then the default), so the
# check follows the configuration the process runs with. A listener set to `off` leaves
# nothing to ask: alive is healthy then. Usage: strait-healthcheck [PID]
set -uo pipefail

pid=${1:-}
if [ -z "$pid" ]; then
    # PID 1 in a container; the first Strait process of ours under an init (--init)
    for p in 1 $(ls /proc | grep -E '^[0-9]+$' | sort -n); do
        case "$(cat "/proc/$p/comm" 2>/dev/null)" in
        strait-cp | strait-dp)
            if [ -r "/proc/$p/environ" ]; then
                pid=$p
                break
            fi
            ;;
        esac
    done
fi
if [ -z "$pid" ]; then
    echo "unhealthy: no strait-cp or strait-dp process" >&2
    exit 1
fi
plane=$(cat "/proc/$pid/comm")

# setting KEY DEFAULT: the process's STRAIT_<KEY>, else the last `key =` line of its
# -c file, else DEFAULT
setting() {
    local key=$1 def=$2 v conf="" prev=""
    v=$(tr '\0' '\n' <"/proc/$pid/environ" | sed -n "s/^STRAIT_${key^^}=//p" | tail -n 1)
    if [ -n "$v" ]; then
        echo "$v"
        return
    fi
    while IFS= read -r -d '' arg; do
        if [ "$prev" = "-c" ]; then conf=$arg; fi
        prev=$arg
    done <"/proc/$pid/cmdline"
    if [ -n "$conf" ]; then
        # through the process's own root and working folder (the same in a container)
        case "$conf" in /*) conf="/proc/$pid/root$conf" ;; *) conf="/proc/$pid/cwd/$conf" ;; esac
        v=$(sed -n "s/^[[:space:]]*${key}[[:space:]]*=[[:space:]]*//p" "$conf" 2>/dev/null |
            tail -n 1 | sed 's/[[:space:]]*#.*//')
    fi
    echo "${v:-$def}"
}

if [ "$plane" = strait-dp ]; then
    listen=$(setting status_listen 127.0.0.1:8007)
else
    listen=$(setting admin_listen 127.0.0.1:8001)
fi
[ "$listen" = off ] && exit 0
# a plain entry if there is one (the CP's admin API may be ssl only)
entry=""
IFS=',' read -ra entries <<<"$listen"
for e in "${entries[@]}"; do
    read -ra words <<<"$e"
    [ "${#words[@]}" -gt 0 ] || continue
    [ -n "$entry" ] || entry="${words[*]}"
    if [[ " ${words[*]:1} " != *" ssl "* ]]; then
        entry="${words[*]}"
        break
    fi
done
read -ra words <<<"$entry"
addr=${words[0]}
port=${addr##*:}
host=${addr%:*}
host=${host#[}
host=${host%]}
case "$host" in 0.0.0.0 | "*") host=127.0.0.1 ;; :: | "") host=::1 ;; esac

if [[ " ${words[*]:1} " == *" ssl "* ]]; then
    # TLS only: an accepted connection is all this check can see without a TLS client
    timeout 5 bash -c "exec 3<>/dev/tcp/$host/$port" && exit 0
    echo "unhealthy: $plane: nothing accepts on $host:$port" >&2
    exit 1
fi
line=$(timeout 5 bash -c "exec 3<>/dev/tcp/\$0/\$1 && printf 'GET /status HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3 && head -n 1 <&3" "$host" "$port")
case "$plane:$line" in
strait-dp:"HTTP/1."?" 200 "*) exit 0 ;;
strait-cp:"HTTP/1."?" "[0-9][0-9][0-9]" "*) exit 0 ;;
esac
echo "unhealthy: $plane: GET /status on $host:$port answered '${line%$'\r'}'" >&2
exit 1
