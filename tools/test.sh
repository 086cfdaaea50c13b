#!/usr/bin/env bash
# Runs the whole test suite. On a fresh Debian machine it first installs what the tests need:
# the real RTMP clients the interop tests drive (ffmpeg, rtmpdump, GStreamer), tshark for
# wire-format checks, nginx with the RTMP module for the load generator's peer test,
# redis-server for the cluster directory tests, Chromium and the npm player libraries for the
# browser test, and uses cargo-nextest when present. The integration tests run twice, once per
# I/O backend (epoll and io_uring).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=()
command -v ffmpeg >/dev/null || packages+=(ffmpeg)
command -v rtmpdump >/dev/null || packages+=(rtmpdump)
command -v gst-launch-1.0 >/dev/null || packages+=(gstreamer1.0-tools)
gst-inspect-1.0 rtmp2src >/dev/null 2>&1 || packages+=(gstreamer1.0-plugins-bad)
gst-inspect-1.0 flvmux >/dev/null 2>&1 || packages+=(gstreamer1.0-plugins-good)
gst-inspect-1.0 avdec_h264 >/dev/null 2>&1 || packages+=(gstreamer1.0-libav)
command -v tshark >/dev/null || packages+=(tshark)
command -v redis-server >/dev/null || packages+=(redis-server)
command -v nginx >/dev/null || packages+=(nginx)
[ -e /usr/lib/nginx/modules/ngx_rtmp_module.so ] || packages+=(libnginx-mod-rtmp)
[ -x /usr/bin/chromium ] || packages+=(chromium)
if [ ${#packages[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "installing test tools: ${packages[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
  else
    echo "missing test tools (install as root): ${packages[*]}" >&2
  fi
fi

# hls.js, mpegts.js and playwright-core for the browser test (Debian's Chromium, no download).
[ -d tools/browser/node_modules/playwright-core ] || (cd tools/browser && npm ci --no-audit --no-fund)

# A recent static ffmpeg (HEVC/AV1 over Enhanced RTMP) for the E-RTMP interop tests.
python3 -c "import imageio_ffmpeg" 2>/dev/null || pip install -q imageio-ffmpeg

# The server tests run once per I/O backend (workers.io): first with the default, then the
# integration tests again with the other one (RTMP_EDGE_IO overrides the configured backend).
OTHER_IO=epoll
status=0
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@" || status=$?
  echo "the integration tests again with RTMP_EDGE_IO=$OTHER_IO"
  RTMP_EDGE_IO=$OTHER_IO cargo nextest run --workspace --no-fail-fast -E 'kind(test)' "$@" || status=$?
else
  cargo test --workspace --no-fail-fast "$@" || status=$?
  echo "the integration tests again with RTMP_EDGE_IO=$OTHER_IO"
  RTMP_EDGE_IO=$OTHER_IO cargo test --workspace --no-fail-fast --test '*' "$@" || status=$?
fi
exit "$status"
