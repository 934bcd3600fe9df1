#!/bin/sh
# Fails when a banned libc function is called in Strait's C sources (CONVENTIONS.md §11),
# or when a data-plane file other than the TLS modules (dp_tls.c, dp_xprt_tls.c) includes
# OpenSSL: the session and the forwarder go through the transport table (dp_xprt.h).
top=${1:-.}
hits=$(grep -nE '\b(strcpy|strcat|sprintf|vsprintf|gets|strtok|atoi|strncpy)[[:space:]]*\(' \
    "$top"/common/*.[ch] "$top"/control-plane/*.[ch] "$top"/data-plane/*.[ch] 2>/dev/null)
if [ -n "$hits" ]; then
    echo "banned functions used:"
    echo "$hits"
    exit 1
fi
hits=$(grep -nE '^#include <openssl/' "$top"/data-plane/*.[ch] 2>/dev/null |
    grep -vE '/data-plane/(dp_tls|dp_xprt_tls)\.c:')
if [ -n "$hits" ]; then
    echo "OpenSSL outside the data plane's TLS modules (use dp_xprt.h / dp_tls.h):"
    echo "$hits"
    exit 1
fi
echo "lint: no banned functions"
